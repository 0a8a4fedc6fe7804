"""The lease keeper: the one place that says whether this node may serve, and until when.

A pure kernel: it verifies what the custodian (or an overseer) signed and keeps the
lease's state; the clock is a parameter (``now``), never read here. Rules:

* a grant counts only if the pinned custodian key signed it for this lease and instance;
  grants carry strictly increasing sequence numbers, and an allowance never goes down;
  anything else is refused with a typed error and changes nothing;
* admission (:meth:`LeaseKeeper.admission`) refuses, in this order: after a kill (410,
  ``killed``, terminal); before any grant (503, ``no_grant``); after the hard expiry (503,
  ``expired``: the dead man's switch, the engine and data key must go, see
  :meth:`LeaseKeeper.must_drop_model`); while paused (503, ``paused``); once the grant's
  ``valid_until`` has passed (503, ``grant_expired``, until a new grant arrives);
* orders count only if verified (custodian key: any kind; overseer key: kill only) and
  addressed to this lease and, for instance orders, this instance; the custodian's orders
  apply in strictly increasing ``seq`` (an older pause can never undo a later resume), and
  an order already applied is skipped, so the full history that renewal answers carry can be
  fed in again and again; kill is terminal: nothing, not even a grant, is accepted after it;
* once the hard expiry has passed, no grant revives the node: coming back needs a new
  enrolment (new keys, new evidence, a new data key).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from modellease.errors import InvalidInputError
from modellease.keys import CustodianPublicKey
from modellease.protocol import (
    Grant,
    Order,
    OverseerPublicKey,
    SignedDocument,
    parse_timestamp,
    verify_grant,
    verify_order,
)


class GrantRefusedError(InvalidInputError):
    """A validly signed grant that must not replace the current one."""

    reason = "grant_refused"


class GrantSequenceError(GrantRefusedError):
    """The grant's sequence number is not above the current grant's (a replay or rollback)."""

    reason = "grant_sequence"


class NodeStoppedError(InvalidInputError):
    """The node was killed or passed its hard expiry: it accepts no grant any more."""

    reason = "node_stopped"


@dataclass(frozen=True, slots=True)
class Admission:
    """May a request start now? If not, the HTTP status and machine-readable reason."""

    allowed: bool
    status: int
    reason: str


ADMITTED = Admission(allowed=True, status=200, reason="ok")


class LeaseKeeper:
    """The node's view of its lease: the current grant, orders applied, kill and pause."""

    def __init__(
        self,
        *,
        lease_id: str,
        instance_id: str,
        custodian_key: CustodianPublicKey,
        overseer_keys: Collection[OverseerPublicKey] = (),
    ) -> None:
        self.lease_id = lease_id
        self.instance_id = instance_id
        self._custodian_keys = [custodian_key]
        self._overseer_keys = list(overseer_keys)
        self._grant: Grant | None = None
        self._valid_until: datetime | None = None
        self._hard_expiry: datetime | None = None
        self._killed = False
        self._paused = False
        self._last_custodian_order = 0
        self._applied: set[str] = set()

    @property
    def grant(self) -> Grant | None:
        return self._grant

    @property
    def killed(self) -> bool:
        return self._killed

    @property
    def paused(self) -> bool:
        return self._paused

    def accept_grant(self, signed: SignedDocument, *, now: datetime) -> Grant:
        """Verify a grant and make it current, or raise and change nothing."""
        if self._killed or self._past_hard_expiry(now):
            raise NodeStoppedError("this instance was stopped; it needs a new enrolment")
        grant = verify_grant(
            signed,
            custodian_keys=self._custodian_keys,
            lease_id=self.lease_id,
            instance_id=self.instance_id,
        )
        current = self._grant
        if current is not None and grant.seq <= current.seq:
            raise GrantSequenceError(
                f"grant {grant.seq} is not newer than the current grant {current.seq}"
            )
        if current is not None and grant.allowance < current.allowance:
            raise GrantRefusedError(
                f"grant {grant.seq} lowers the allowance from {current.allowance} "
                f"to {grant.allowance}"
            )
        self._grant = grant
        self._valid_until = parse_timestamp(grant.valid_until)
        self._hard_expiry = parse_timestamp(grant.hard_expiry_at)
        return grant

    def accept_order(self, signed: SignedDocument) -> Order | None:
        """Verify and apply an order; ``None`` if it is not for us or already applied."""
        verified = verify_order(
            signed,
            custodian_keys=self._custodian_keys,
            overseer_keys=self._overseer_keys,
            lease_id=self.lease_id,
        )
        order = verified.order
        if order.instance_id not in (None, self.instance_id) or order.order_id in self._applied:
            return None
        if verified.issuer == "custodian":
            if order.seq <= self._last_custodian_order:
                return None  # older than an order already applied: history, not news
            self._last_custodian_order = order.seq
        self._applied.add(order.order_id)
        if order.kind == "kill":
            self._killed = True
        elif not self._killed:
            self._paused = order.kind == "pause"
        return order

    def admission(self, now: datetime) -> Admission:
        """Whether a request may start at ``now`` (see the module docstring for the order)."""
        if self._killed:
            return Admission(allowed=False, status=410, reason="killed")
        if self._grant is None:
            return Admission(allowed=False, status=503, reason="no_grant")
        if self._past_hard_expiry(now):
            return Admission(allowed=False, status=503, reason="expired")
        if self._paused:
            return Admission(allowed=False, status=503, reason="paused")
        if not self.grant_valid_at(now):
            return Admission(allowed=False, status=503, reason="grant_expired")
        return ADMITTED

    def grant_valid_at(self, now: datetime) -> bool:
        """True while the current grant is valid (before its ``valid_until``)."""
        return self._valid_until is not None and now < self._valid_until

    def must_drop_model(self, now: datetime) -> bool:
        """True once the engine and the data key must be dropped: killed or past hard expiry."""
        return self._killed or self._past_hard_expiry(now)

    def _past_hard_expiry(self, now: datetime) -> bool:
        return self._hard_expiry is not None and now >= self._hard_expiry
