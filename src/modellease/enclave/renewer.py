"""The renewer: the node's thin async shell around the runtime's renewal decisions.

Two tasks on the node's event loop:

* **renewals**: a signed usage report every third of the grant's lifetime (its TTL), and at
  once when the slice runs low (:meth:`Renewer.poke`, called by the request handlers). The
  answer goes to the runtime (orders, then the grant, both verified by the lease keeper).
  A failed send is retried with exponential backoff (``BACKOFF_START_S`` doubling up to the
  renewal interval); the unanswered report is sent again as it is. When the custodian's
  answer leaves the slice low without more allowance, one signed extension request is filed.
* **orders**: the custodian's server-sent event stream of signed orders for the lease, read
  as they come and applied through the runtime; reconnected with the same backoff. A kill
  is applied the moment it arrives, then the final usage is reported.

When the node shuts down, the final usage is reported once more (at most
``FINAL_REPORT_TIMEOUT_S``), so a graceful stop loses no telemetry.

Between renewals the loop wakes at least every ``TICK_S`` to let the runtime enforce the
dead man's switch: serving stops when the grant expires (checked per request anyway) and
the model is dropped at the hard expiry, with or without a custodian.

Nothing here decides: it moves signed bytes between the custodian and the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

import httpx

from modellease.enclave.runtime import NodeRuntime
from modellease.enclave.wire import CustodianClient, CustodianRefusedError
from modellease.errors import ModelleaseError
from modellease.protocol import SignedDocument, parse_timestamp

log = logging.getLogger("modellease.node")

TICK_S = 1.0  # the dead man's switch is checked at least this often
BACKOFF_START_S = 0.25
MIN_INTERVAL_S = 0.2  # never renew more often than this, however short the TTL
FINAL_REPORT_TIMEOUT_S = 5.0  # how long a shutdown waits to report the final usage

Clock = Callable[[], datetime]


def renewal_interval(runtime: NodeRuntime) -> float:
    """A third of the current grant's lifetime, in seconds."""
    grant = runtime.grant
    ttl = parse_timestamp(grant.valid_until) - parse_timestamp(grant.issued_at)
    return max(ttl.total_seconds() / 3, MIN_INTERVAL_S)


class Renewer:
    """Runs the renewals and the order stream of one node (see the module docstring)."""

    def __init__(
        self,
        runtime: NodeRuntime,
        custodian: CustodianClient,
        *,
        orders: httpx.AsyncClient,
        clock: Clock,
    ) -> None:
        """Make it on the event loop it will run on; it closes ``orders`` when it stops."""
        self.runtime = runtime
        self.custodian = custodian
        self.orders = orders
        self.clock = clock
        self.renewals = 0
        self.failures = 0
        self.orders_received = 0
        self.stream_connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()  # made on the loop it runs on
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifetime
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._renewals(), name="renewals"),
            asyncio.create_task(self._order_stream(), name="orders"),
        ]

    async def stop(self) -> None:
        """Stop both tasks, then report the final usage once (a graceful shutdown loses no
        telemetry), waiting at most ``FINAL_REPORT_TIMEOUT_S`` for the custodian."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await asyncio.wait_for(self.renew_once(), FINAL_REPORT_TIMEOUT_S)
        except TimeoutError:
            log.warning("final usage report timed out", extra={"seconds": FINAL_REPORT_TIMEOUT_S})
        await self.orders.aclose()

    def poke(self) -> None:
        """Renew now (thread-safe): the slice is running low, or an order needs reporting."""
        self._loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------ renewals
    async def _renewals(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = BACKOFF_START_S
        while True:
            deadline = loop.time() + (backoff if self.failures else renewal_interval(self.runtime))
            while not self._wake.is_set() and (left := deadline - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(left, TICK_S))
                self.runtime.enforce(self.clock())
            self._wake.clear()
            stopped = self.runtime.keeper.killed
            answered = await self.renew_once()
            if answered and stopped:
                log.info("final usage reported; renewals end", extra={"reports": self.renewals})
                return
            backoff = (
                BACKOFF_START_S if answered else min(backoff * 2, renewal_interval(self.runtime))
            )

    async def renew_once(self) -> bool:
        """Send one report and apply the answer; False if it must be retried."""
        report = self.runtime.report(now=self.clock())
        try:
            answer = await asyncio.to_thread(self.custodian.renew, report.to_json())
        except (httpx.HTTPError, CustodianRefusedError) as exc:
            self.failures += 1
            detail = exc.refusal if isinstance(exc, CustodianRefusedError) else type(exc).__name__
            log.warning("renewal failed", extra={"error": detail, "failures": self.failures})
            self.runtime.enforce(self.clock())
            return False
        self.failures = 0
        self.renewals += 1
        try:
            self.runtime.answered(answer, now=self.clock())
        except ModelleaseError as exc:
            log.warning("custodian answer refused", extra={"reason": exc.reason, "error": str(exc)})
        await self._maybe_extend()
        return True

    async def _maybe_extend(self) -> None:
        request = self.runtime.extension_request(now=self.clock())
        if request is None:
            return
        try:
            request_id = await asyncio.to_thread(
                self.custodian.request_extension, request.to_json()
            )
        except (httpx.HTTPError, CustodianRefusedError) as exc:
            log.warning("extension request failed", extra={"error": type(exc).__name__})
            return
        log.info("extension requested", extra={"request_id": request_id})

    # ------------------------------------------------------------------ orders
    async def _order_stream(self) -> None:
        backoff = BACKOFF_START_S
        path = f"/v1/leases/{self.runtime.lease_id}/orders"
        while True:
            try:
                async with self.orders.stream("GET", path, timeout=None) as response:
                    response.raise_for_status()
                    self.stream_connected.set()
                    backoff = BACKOFF_START_S
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            self._take_order(line[len("data: ") :].encode())
            except httpx.HTTPError as exc:
                log.warning("order stream lost", extra={"error": type(exc).__name__})
            self.stream_connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, renewal_interval(self.runtime))

    def _take_order(self, data: bytes) -> None:
        try:
            order = self.runtime.take_order(SignedDocument.from_json(data), now=self.clock())
        except ModelleaseError as exc:
            log.warning("order refused", extra={"reason": exc.reason, "error": str(exc)})
            return
        if order is not None:
            self.orders_received += 1
            log.info("order applied", extra={"order_id": order.order_id, "kind": order.kind})
            self.poke()  # report the usage at the moment of the order
