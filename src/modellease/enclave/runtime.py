"""The node's runtime state: the lease keeper, the meter, the report chain and the engine,
composed so that the HTTP handlers and the renewer each make one call per decision.

Pure apart from a lock: no I/O, the clock is a parameter. Rules:

* a request starts only through :meth:`NodeRuntime.begin`: the keeper admits it (or the
  refusal's status and reason are raised as :class:`ServiceRefusedError`), then the meter
  reserves its maximum cost (or :class:`~modellease.enclave.meter.AllowanceExhaustedError`,
  429); nothing runs otherwise;
* every grant goes through the keeper (pinned custodian key, strictly increasing sequence,
  allowance never down) before the meter's allowance is raised to it;
* orders go through the keeper; once the keeper says the model must go (kill, or the hard
  expiry passed: the dead man's switch), :meth:`NodeRuntime.enforce` closes the engine.
  It is called after every answer and order and by the renewer's clock, and it is
  idempotent;
* a report that got no answer is sent again as it is (:meth:`NodeRuntime.report`), so a
  lost answer never forks the chain;
* the slice is "low" (:meth:`NodeRuntime.slice_low`: renew now) when under a quarter of
  the last increment is left, or a request was refused for lack of allowance since the
  allowance last grew;
* the node asks for an extension (:meth:`NodeRuntime.extension_request`) at most once per
  allowance: when the custodian's latest answer did not raise the allowance and the slice
  is low. It asks for the largest increment it has been granted (about one slice).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from modellease._hazmat import SigningKey
from modellease.enclave.keeper import Admission, LeaseKeeper
from modellease.enclave.meter import Meter, Reservation, Usage
from modellease.enclave.receipt_log import ReceiptLog
from modellease.enclave.telemetry import ReportChain, counters_of
from modellease.errors import StateError
from modellease.protocol import (
    ExtensionRequest,
    Grant,
    Order,
    RenewResponse,
    SignedDocument,
    format_timestamp,
    sign_message,
)

LOW_SLICE_FRACTION = 4  # the slice is "low" once less than 1/4 of the last increment is left


class Engine(Protocol):
    """What the runtime needs of an engine: it can be closed, for good."""

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...


class ServiceRefusedError(StateError):
    """The lease keeper refuses to start work now: HTTP ``status``, machine-readable ``refusal``."""

    reason = "service_refused"

    def __init__(self, admission: Admission) -> None:
        super().__init__(f"this node does not serve now: {admission.reason}")
        self.status = admission.status
        self.refusal = admission.reason


@dataclass(frozen=True, slots=True)
class Status:
    """What the node tells anyone who asks: counts and state, never content."""

    lease_id: str
    instance_id: str
    admission: Admission
    grant_seq: int
    usage: Usage
    reports: int
    model_loaded: bool


class NodeRuntime:
    """One enrolled instance's state and decisions (see the module docstring)."""

    def __init__(
        self,
        *,
        keeper: LeaseKeeper,
        signer: SigningKey,
        engine: Engine,
    ) -> None:
        """``keeper`` holds the enrolment's verified grant already."""
        if keeper.grant is None:
            raise ValueError("the lease keeper has no grant yet")
        self.keeper = keeper
        self.engine = engine
        self.meter = Meter()
        self.chain = ReportChain(
            lease_id=keeper.lease_id, instance_id=keeper.instance_id, signer=signer
        )
        self._signer = signer
        self.receipts = ReceiptLog(
            lease_id=keeper.lease_id, instance_id=keeper.instance_id, signer=signer
        )
        self._lock = threading.Lock()
        self._pending: SignedDocument | None = None
        self.meter.set_allowance(keeper.grant.allowance)
        # how much the latest grant that raised the allowance added; the largest such
        # increment (about a slice: what an extension asks for); did the latest answer raise
        # it; the allowance when we last asked for an extension; refusals counted by then
        self._increment = self._largest_increment = keeper.grant.allowance
        self._grew = True
        self._asked_at_allowance = -1
        self._refusals_at_grant = 0

    @property
    def grant(self) -> Grant:
        """The current grant (there always is one: the enrolment's, or a later one)."""
        grant = self.keeper.grant
        if grant is None:
            raise AssertionError("unreachable: a runtime is built with a grant")
        return grant

    @property
    def lease_id(self) -> str:
        return self.keeper.lease_id

    @property
    def instance_id(self) -> str:
        return self.keeper.instance_id

    # ------------------------------------------------------------------ requests
    def admit(self, *, now: datetime) -> None:
        """Raise :class:`ServiceRefusedError` unless the lease keeper admits work now."""
        with self._lock:
            admission = self.keeper.admission(now)
        if not admission.allowed:
            raise ServiceRefusedError(admission)

    def begin(self, units: int, *, now: datetime) -> Reservation:
        """Admit a request and reserve ``units`` for it, or raise (nothing reserved)."""
        self.admit(now=now)
        return self.meter.reserve(units)

    def finish(
        self,
        reservation: Reservation,
        *,
        units: int,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        flops: int = 0,
    ) -> None:
        """Charge a request that ran (at most what it reserved), releasing the rest."""
        self.meter.settle(
            reservation,
            units=units,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            flops=flops,
        )

    def abandon(self, reservation: Reservation) -> None:
        """Give back a reservation whose work never ran."""
        self.meter.release(reservation)

    def slice_low(self) -> bool:
        """True when less than a quarter of the last slice is left, or a request was refused
        for lack of allowance since the latest grant: time to renew early."""
        usage = self.meter.usage()
        return (
            usage.available * LOW_SLICE_FRACTION < max(self._increment, 1)
            or usage.refusals > self._refusals_at_grant
        )

    # ------------------------------------------------------------------ renewals
    def report(self, *, now: datetime) -> SignedDocument:
        """The report to send: the unanswered one again, or the next with the current counts."""
        with self._lock:
            if self._pending is None:
                counters = counters_of(self.meter.usage())
                self._pending = self.chain.next_report(counters, now=now)
            return self._pending

    def answered(self, answer: RenewResponse, *, now: datetime) -> None:
        """Apply the custodian's answer to the pending report: its orders first, then its grant.

        Raises (from the keeper) if the grant is forged, replayed or lowers the allowance;
        the orders verified before it still count, and the report stays answered (sending
        it again would only fetch the same refused grant).
        """
        try:
            with self._lock:
                self._pending = None
                for order in answer.orders:
                    self.keeper.accept_order(order)
                self._grew = False
                if answer.grant is not None and not self.keeper.must_drop_model(now):
                    self._take_grant(answer.grant, now)
        finally:
            self.enforce(now)

    def take_order(self, signed: SignedDocument, *, now: datetime) -> Order | None:
        """Apply one pushed order (verified by the keeper); then enforce it."""
        try:
            with self._lock:
                return self.keeper.accept_order(signed)
        finally:
            self.enforce(now)

    def _take_grant(self, signed: SignedDocument, now: datetime) -> None:
        before = self.meter.usage().allowance
        grant = self.keeper.accept_grant(signed, now=now)
        self.meter.set_allowance(grant.allowance)
        if grant.allowance > before:
            self._increment, self._grew = grant.allowance - before, True
            self._largest_increment = max(self._largest_increment, self._increment)
            self._refusals_at_grant = self.meter.usage().refusals

    def extension_request(self, *, now: datetime) -> SignedDocument | None:
        """A signed request for one more slice, if one is due (see the module docstring)."""
        with self._lock:
            allowance = self.meter.usage().allowance
            due = (
                not self._grew
                and self.slice_low()
                and allowance != self._asked_at_allowance
                and not self.keeper.must_drop_model(now)
            )
            if not due:
                return None
            self._asked_at_allowance = allowance
            request = ExtensionRequest(
                lease_id=self.lease_id,
                requester="instance",
                instance_id=self.instance_id,
                units=self._largest_increment,
                reason="the node's allowance is nearly used up",
                requested_at=format_timestamp(now),
            )
            return sign_message(request, signer=self._signer)

    # ------------------------------------------------------------------ the off-switch
    def enforce(self, now: datetime) -> bool:
        """Close the engine if the lease keeper says the model must go; True if it is gone."""
        with self._lock:
            drop = self.keeper.must_drop_model(now)
        if drop and not self.engine.closed:
            self.engine.close()
        return drop

    def status(self, now: datetime) -> Status:
        with self._lock:
            grant = self.keeper.grant
            admission = self.keeper.admission(now)
            reports = self.chain.seq
        return Status(
            lease_id=self.lease_id,
            instance_id=self.instance_id,
            admission=admission,
            grant_seq=grant.seq if grant is not None else 0,
            usage=self.meter.usage(),
            reports=reports,
            model_loaded=not self.engine.closed,
        )
