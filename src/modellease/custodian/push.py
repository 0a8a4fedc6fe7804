"""Pushing signed orders to the nodes that listen for them (server-sent events).

A node listens on ``GET /v1/leases/{lease}/orders`` of whichever custodian process it
reached. Rules:

* an order accepted by this process is published to its listeners at once;
* an order accepted by another process (``custodian serve --workers N``, or a replica on the
  same database) is found by reading the lease's orders from the store every
  ``ORDER_POLL_S`` while someone listens to that lease, and published then;
* the orders a lease had when its first listener arrived are known, not pushed (a node
  learns the current state from its renewal answers); every later order is pushed to each
  listener exactly once, whichever way this process learnt of it;
* runs on the server's event loop only, so it needs no lock; the store is read in the
  thread pool.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

ORDER_POLL_S = 1.0  # how stale a push of another process's order may be

LoadOrders = Callable[[str], list[str]]
"""The canonical JSON of every signed order of a lease, from the store."""


class OrderBroadcaster:
    """Fan-out of signed orders to this process's listeners (see the module docstring)."""

    def __init__(self, load: LoadOrders) -> None:
        self._load = load
        self._listeners: dict[str, set[asyncio.Queue[str]]] = defaultdict(set)
        self._known: dict[str, set[str]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def subscribe(self, lease_id: str) -> asyncio.Queue[str]:
        """A queue that receives every order of ``lease_id`` published from now on."""
        if lease_id not in self._known:
            existing = await run_in_threadpool(self._load, lease_id)
            self._known.setdefault(lease_id, set()).update(existing)
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._listeners[lease_id].add(queue)
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll())
        return queue

    def unsubscribe(self, lease_id: str, queue: asyncio.Queue[str]) -> None:
        self._listeners[lease_id].discard(queue)
        if not self._listeners[lease_id]:
            del self._listeners[lease_id]
            self._known.pop(lease_id, None)  # re-read when someone listens again

    def publish(self, lease_id: str, signed_order_json: str) -> None:
        """Deliver one order to the lease's listeners, unless they already had it."""
        if lease_id not in self._listeners:
            return
        known = self._known.setdefault(lease_id, set())
        if signed_order_json in known:
            return
        known.add(signed_order_json)
        for queue in list(self._listeners[lease_id]):
            queue.put_nowait(signed_order_json)

    async def _poll(self) -> None:
        try:
            while self._listeners:
                await asyncio.sleep(ORDER_POLL_S)
                for lease_id in list(self._listeners):
                    for signed in await run_in_threadpool(self._load, lease_id):
                        self.publish(lease_id, signed)
        finally:
            self._poller = None
