"""The ledger: a lease's budget accounting, as a pure kernel (no I/O, no clock, no database).

The service loads plain values (one :class:`LeaseState` row, the :class:`InstanceState` rows it
needs), calls one function here with ``now=``, persists the states it gets back and signs the
:class:`Grant`, all in one transaction that holds the lease row locked. Every state is a frozen
value: a function returns new states and never changes its inputs, so a refusal (an exception)
changes nothing.

Rules:

* a lease has a budget in one unit (``requests``, ``tokens`` or ``flops``), a slice size, a
  heartbeat TTL, a hard expiry and an end date; each is bounded by a named constant below;
* **accounting invariant**: ``committed`` (the sum of the allowances ever granted to the
  lease's instances, active, closed or killed) never exceeds ``budget``; the budget only grows
  (``extend`` by at least one unit), so every grant stays within the budget it was made under;
* ``consumed`` is the whole allowance of every ended (closed or killed) instance plus the last
  reported usage of every active one; it never decreases. ``remaining = budget - committed``;
* **enrolment** makes a new instance whose first grant is ``min(slice, remaining)`` units; it is
  refused on a killed, ended (``now >= ends_at``) or paused lease, or when nothing remains.
  Re-enrolling a node makes a new instance: the old ones keep their allowance counted;
* **renewal** takes the instance's cumulative usage: it may not go down, nor above the
  allowance; an ended instance, a killed lease, or an instance past its hard expiry is refused;
* a valid usage report is always recorded; the grant is **withheld** (no new grant, the
  allowance does not grow) when the lease has ended, the lease is paused or the instance is;
* **top-up**: a grant restores the instance's headroom (``allowance - usage``) to one slice,
  limited by what remains: ``allowance' = max(allowance, min(usage + slice, allowance +
  remaining))``. Allowances never decrease, and heartbeats without usage do not grow them;
* a grant has the next sequence number and is valid until ``min(now + ttl, ends_at)``, never
  earlier than the previous grant's valid-until (a clock stepping back shrinks nothing);
* **dead man's switch**: an active instance is closed once ``now >= valid_until + hard_expiry``
  (``expire``; ``renew`` refuses it even before the sweep). A pause longer than the TTL plus the
  hard expiry therefore ends the instances: their nodes forgot the key, they must re-enrol;
* **ending is terminal**: a closed or killed instance never gets another grant, and its whole
  allowance counts as consumed forever, since the custodian cannot know whether it still
  serves its last grant. Closing or killing an ended instance changes nothing;
* killing a lease kills its instances and is terminal: no enrolment, renewal, extension,
  pause or resume afterwards;
* refusals raise a :class:`LedgerError` subclass with a stable ``reason``; caller bugs (a
  naive ``now``, inconsistent stored values, one instance given twice) raise ``ValueError``.

Totals are kept on the lease (``committed``, ``settled``, ``active_usage``) so that each
operation reads and writes O(1) rows; :func:`tally` recomputes them from instance rows to check
a store. The caller must pass the current rows, and serialise operations on one lease.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from modellease.errors import InvalidInputError

MAX_UNITS = 2**63 - 1  # largest budget, allowance or usage: a signed 64-bit SQL BIGINT
MIN_SLICE_SIZE = 1  # a grant of zero units per slice would never let a node serve
MIN_EXTENSION = 1  # an extension adds at least one unit: the budget never shrinks
MIN_HEARTBEAT_TTL = timedelta(seconds=1)  # below this, renewals would flood the custodian
MAX_HEARTBEAT_TTL = timedelta(days=1)  # bounds how long a node serves after being cut off
MIN_HARD_EXPIRY = timedelta(0)  # zero: close an instance as soon as its grant lapses
MAX_HARD_EXPIRY = timedelta(days=7)  # bounds how long a silent instance may keep the key
MAX_LEASE_END = datetime(9999, 1, 1, tzinfo=UTC)  # ends_at + MAX_HARD_EXPIRY cannot overflow
FIRST_GRANT_SEQ = 1  # sequence number of an instance's first grant; each grant adds one


# --------------------------------------------------------------------------- errors
class LedgerError(InvalidInputError):
    """The ledger refused an operation; nothing was changed."""

    reason = "ledger_refused"


class LeaseTermsError(LedgerError):
    """Lease terms or an initial budget are outside the limits the ledger accepts."""

    reason = "lease_terms_invalid"


class UnknownInstanceError(LedgerError):
    """The instance does not belong to this lease."""

    reason = "unknown_instance"


class InstanceClosedError(LedgerError):
    """The instance was closed (dead man's switch or shutdown); the node must re-enrol."""

    reason = "instance_closed"


class InstanceKilledError(LedgerError):
    """The instance was killed by an order; this is terminal."""

    reason = "instance_killed"


class InstanceExpiredError(LedgerError):
    """The instance missed its hard expiry; it is closed and the node must re-enrol."""

    reason = "instance_expired"


class UsageDecreasedError(LedgerError):
    """The reported cumulative usage is lower than the last one: counters never go down."""

    reason = "usage_decreased"


class UsageAboveAllowanceError(LedgerError):
    """The reported cumulative usage is above the instance's cumulative allowance."""

    reason = "usage_above_allowance"


class BudgetExhaustedError(LedgerError):
    """Nothing remains of the lease budget to grant a new instance."""

    reason = "budget_exhausted"


class LeaseEndedError(LedgerError):
    """The lease has reached its end date."""

    reason = "lease_ended"


class LeaseKilledError(LedgerError):
    """The lease was killed; this is terminal."""

    reason = "lease_killed"


class LeasePausedError(LedgerError):
    """The lease is paused: no new instance is granted anything."""

    reason = "lease_paused"


class InvalidExtensionError(LedgerError):
    """An extension must add at least one unit and keep the budget within ``MAX_UNITS``."""

    reason = "extension_invalid"


# --------------------------------------------------------------------------- values
class Unit(StrEnum):
    """What a lease's budget counts."""

    REQUESTS = "requests"
    TOKENS = "tokens"
    FLOPS = "flops"


class InstanceStatus(StrEnum):
    """An instance is active until it is closed or killed; both are terminal."""

    ACTIVE = "active"
    CLOSED = "closed"
    KILLED = "killed"


class Withheld(StrEnum):
    """Why a renewal recorded the usage report but issued no grant."""

    LEASE_ENDED = "lease_ended"
    LEASE_PAUSED = "lease_paused"
    INSTANCE_PAUSED = "instance_paused"


def _is_aware(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() is not None


def _require_aware(name: str, value: datetime) -> None:
    if not _is_aware(value):
        raise ValueError(f"{name} must be a timezone-aware datetime")


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTerms:
    """The fixed terms of a lease. Out-of-bounds terms raise :class:`LeaseTermsError`."""

    unit: Unit
    slice_size: int  # units an instance may hold beyond its reported usage
    heartbeat_ttl: timedelta  # how long a grant is valid
    hard_expiry: timedelta  # how long after its grant lapses a silent instance is closed
    ends_at: datetime  # no grant is valid beyond it, none is issued after it

    def __post_init__(self) -> None:
        if not MIN_SLICE_SIZE <= self.slice_size <= MAX_UNITS:
            raise LeaseTermsError(f"slice size must be between {MIN_SLICE_SIZE} and {MAX_UNITS}")
        if not MIN_HEARTBEAT_TTL <= self.heartbeat_ttl <= MAX_HEARTBEAT_TTL:
            raise LeaseTermsError(
                f"heartbeat TTL must be between {MIN_HEARTBEAT_TTL} and {MAX_HEARTBEAT_TTL}"
            )
        if not MIN_HARD_EXPIRY <= self.hard_expiry <= MAX_HARD_EXPIRY:
            raise LeaseTermsError(
                f"hard expiry must be between {MIN_HARD_EXPIRY} and {MAX_HARD_EXPIRY}"
            )
        if not _is_aware(self.ends_at):
            raise LeaseTermsError("lease end must be a timezone-aware date and time")
        if self.ends_at > MAX_LEASE_END:
            raise LeaseTermsError(f"lease end must be no later than {MAX_LEASE_END.isoformat()}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseState:
    """A lease's budget and totals. Inconsistent values (a corrupt store) raise ``ValueError``."""

    lease_id: str
    terms: LeaseTerms
    budget: int  # total units the lease may ever grant
    paused: bool
    killed: bool
    committed: int  # sum of the allowances of all instances, active or ended
    settled: int  # sum of the allowances of ended (closed or killed) instances
    active_usage: int  # sum of the last reported usage of active instances

    def __post_init__(self) -> None:
        if not self.lease_id:
            raise ValueError("lease id must not be empty")
        if not 0 <= self.budget <= MAX_UNITS:
            raise ValueError(f"budget must be between 0 and {MAX_UNITS}")
        if not 0 <= self.settled <= self.committed <= self.budget:
            raise ValueError("totals break 0 <= settled <= committed <= budget")
        if not 0 <= self.active_usage <= self.committed - self.settled:
            raise ValueError("active usage must be within the active instances' allowances")

    @property
    def consumed(self) -> int:
        """Units counted as used: ended instances' whole allowances plus active usage."""
        return self.settled + self.active_usage

    @property
    def remaining(self) -> int:
        """Units not yet granted to any instance."""
        return self.budget - self.committed


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceState:
    """One enrolled instance. Inconsistent values (a corrupt store) raise ``ValueError``."""

    instance_id: str
    lease_id: str
    status: InstanceStatus
    allowance: int  # cumulative units granted
    usage: int  # last reported cumulative usage
    grant_seq: int  # sequence number of the latest grant
    valid_until: datetime  # end of the latest grant's validity
    paused: bool
    enrolled_at: datetime
    ended_at: datetime | None  # when it was closed or killed; None while active

    def __post_init__(self) -> None:
        if not self.instance_id or not self.lease_id:
            raise ValueError("instance and lease ids must not be empty")
        if not 0 <= self.usage <= self.allowance <= MAX_UNITS:
            raise ValueError(f"values break 0 <= usage <= allowance <= {MAX_UNITS}")
        if self.grant_seq < FIRST_GRANT_SEQ:
            raise ValueError(f"grant sequence numbers start at {FIRST_GRANT_SEQ}")
        _require_aware("valid_until", self.valid_until)
        _require_aware("enrolled_at", self.enrolled_at)
        if (self.status is InstanceStatus.ACTIVE) != (self.ended_at is None):
            raise ValueError("an instance has an end time exactly when it is closed or killed")
        if self.ended_at is not None:
            _require_aware("ended_at", self.ended_at)

    @property
    def headroom(self) -> int:
        """Units the instance may still use under its latest grant."""
        return self.allowance - self.usage


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """What the custodian signs for an instance: a cumulative allowance and its validity."""

    lease_id: str
    instance_id: str
    unit: Unit
    seq: int
    allowance: int
    valid_until: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrolment:
    """A new instance and its first grant."""

    lease: LeaseState
    instance: InstanceState
    grant: Grant


@dataclass(frozen=True, slots=True, kw_only=True)
class Renewal:
    """A recorded usage report, with either a new grant or the reason it was withheld."""

    lease: LeaseState
    instance: InstanceState
    grant: Grant | None
    withheld: Withheld | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Closure:
    """The lease after closing or killing instances, and the instances that changed."""

    lease: LeaseState
    ended: tuple[InstanceState, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Tally:
    """Totals recomputed from instance rows; they must equal the lease's."""

    committed: int
    settled: int
    active_usage: int

    @property
    def consumed(self) -> int:
        """Ended instances' whole allowances plus active usage."""
        return self.settled + self.active_usage


# --------------------------------------------------------------------------- helpers
def _check_belongs(lease: LeaseState, instance: InstanceState) -> None:
    if instance.lease_id != lease.lease_id:
        raise UnknownInstanceError(f"instance {instance.instance_id!r} is not in this lease")


def _check_active(instance: InstanceState) -> None:
    if instance.status is InstanceStatus.KILLED:
        raise InstanceKilledError(f"instance {instance.instance_id!r} was killed")
    if instance.status is InstanceStatus.CLOSED:
        raise InstanceClosedError(f"instance {instance.instance_id!r} is closed; re-enrol")


def _check_not_killed(lease: LeaseState) -> None:
    if lease.killed:
        raise LeaseKilledError(f"lease {lease.lease_id!r} was killed")


def _has_ended(lease: LeaseState, now: datetime) -> bool:
    return now >= lease.terms.ends_at


def _withheld(lease: LeaseState, instance: InstanceState, now: datetime) -> Withheld | None:
    if _has_ended(lease, now):
        return Withheld.LEASE_ENDED
    if lease.paused:
        return Withheld.LEASE_PAUSED
    if instance.paused:
        return Withheld.INSTANCE_PAUSED
    return None


def _grant(lease: LeaseState, instance: InstanceState) -> Grant:
    return Grant(
        lease_id=lease.lease_id,
        instance_id=instance.instance_id,
        unit=lease.terms.unit,
        seq=instance.grant_seq,
        allowance=instance.allowance,
        valid_until=instance.valid_until,
    )


def _valid_until(lease: LeaseState, now: datetime) -> datetime:
    return min(now + lease.terms.heartbeat_ttl, lease.terms.ends_at)


def _end(
    lease: LeaseState, instance: InstanceState, status: InstanceStatus, now: datetime
) -> tuple[LeaseState, InstanceState]:
    ended = replace(instance, status=status, ended_at=now)
    lease = replace(
        lease,
        settled=lease.settled + instance.allowance,
        active_usage=lease.active_usage - instance.usage,
    )
    return lease, ended


def _end_each(
    lease: LeaseState,
    instances: Iterable[InstanceState],
    status: InstanceStatus,
    now: datetime,
    *,
    only_overdue: bool,
) -> Closure:
    seen: set[str] = set()
    ended: list[InstanceState] = []
    for instance in instances:
        _check_belongs(lease, instance)
        if instance.instance_id in seen:
            raise ValueError(f"instance {instance.instance_id!r} given twice")
        seen.add(instance.instance_id)
        if instance.status is not InstanceStatus.ACTIVE:
            continue
        if only_overdue and now < closes_at(lease, instance):
            continue
        lease, changed = _end(lease, instance, status, now)
        ended.append(changed)
    return Closure(lease=lease, ended=tuple(ended))


# --------------------------------------------------------------------------- operations
def open_lease(*, lease_id: str, terms: LeaseTerms, budget: int) -> LeaseState:
    """A new lease with nothing granted. A budget of zero is allowed: extend it later."""
    if not 0 <= budget <= MAX_UNITS:
        raise LeaseTermsError(f"budget must be between 0 and {MAX_UNITS}")
    return LeaseState(
        lease_id=lease_id,
        terms=terms,
        budget=budget,
        paused=False,
        killed=False,
        committed=0,
        settled=0,
        active_usage=0,
    )


def enrol(lease: LeaseState, *, instance_id: str, now: datetime) -> Enrolment:
    """Record a new instance and its first grant of ``min(slice, remaining)`` units."""
    _require_aware("now", now)
    _check_not_killed(lease)
    if _has_ended(lease, now):
        raise LeaseEndedError(f"lease {lease.lease_id!r} ended at {lease.terms.ends_at}")
    if lease.paused:
        raise LeasePausedError(f"lease {lease.lease_id!r} is paused")
    if lease.remaining == 0:
        raise BudgetExhaustedError(f"lease {lease.lease_id!r} has no budget left to grant")
    allowance = min(lease.terms.slice_size, lease.remaining)
    instance = InstanceState(
        instance_id=instance_id,
        lease_id=lease.lease_id,
        status=InstanceStatus.ACTIVE,
        allowance=allowance,
        usage=0,
        grant_seq=FIRST_GRANT_SEQ,
        valid_until=_valid_until(lease, now),
        paused=False,
        enrolled_at=now,
        ended_at=None,
    )
    lease = replace(lease, committed=lease.committed + allowance)
    return Enrolment(lease=lease, instance=instance, grant=_grant(lease, instance))


def renew(lease: LeaseState, instance: InstanceState, *, usage: int, now: datetime) -> Renewal:
    """Record a cumulative usage report and answer with a topped-up grant, or withhold it."""
    _require_aware("now", now)
    _check_belongs(lease, instance)
    _check_active(instance)
    _check_not_killed(lease)
    if now >= closes_at(lease, instance):
        raise InstanceExpiredError(
            f"instance {instance.instance_id!r} missed its hard expiry; re-enrol"
        )
    if usage < instance.usage:
        raise UsageDecreasedError(f"usage went down from {instance.usage} to {usage}")
    if usage > instance.allowance:
        raise UsageAboveAllowanceError(f"usage {usage} is above the allowance {instance.allowance}")

    active_usage = lease.active_usage + usage - instance.usage
    withheld = _withheld(lease, instance, now)  # reads neither usage nor totals
    if withheld is not None:
        lease = replace(lease, active_usage=active_usage)
        instance = replace(instance, usage=usage)
        return Renewal(lease=lease, instance=instance, grant=None, withheld=withheld)

    allowance = max(
        instance.allowance,
        min(usage + lease.terms.slice_size, instance.allowance + lease.remaining),
    )
    lease = replace(
        lease,
        active_usage=active_usage,
        committed=lease.committed + allowance - instance.allowance,
    )
    instance = replace(
        instance,
        usage=usage,
        allowance=allowance,
        grant_seq=instance.grant_seq + 1,
        valid_until=max(instance.valid_until, _valid_until(lease, now)),
    )
    return Renewal(lease=lease, instance=instance, grant=_grant(lease, instance), withheld=None)


def current_grant(lease: LeaseState, instance: InstanceState) -> Grant:
    """The instance's latest grant, e.g. to answer a retried report with the same grant."""
    _check_belongs(lease, instance)
    return _grant(lease, instance)


def closes_at(lease: LeaseState, instance: InstanceState) -> datetime:
    """When the dead man's switch closes the instance if it does not renew."""
    return instance.valid_until + lease.terms.hard_expiry


def expire(lease: LeaseState, instances: Iterable[InstanceState], *, now: datetime) -> Closure:
    """Close every given active instance past its hard expiry (the dead man's switch)."""
    _require_aware("now", now)
    return _end_each(lease, instances, InstanceStatus.CLOSED, now, only_overdue=True)


def close_instance(lease: LeaseState, instance: InstanceState, *, now: datetime) -> Closure:
    """Close an instance (shutdown or operator); its whole allowance counts as consumed."""
    _require_aware("now", now)
    return _end_each(lease, (instance,), InstanceStatus.CLOSED, now, only_overdue=False)


def kill_instance(lease: LeaseState, instance: InstanceState, *, now: datetime) -> Closure:
    """Kill an instance (terminal); its whole allowance counts as consumed."""
    _require_aware("now", now)
    return _end_each(lease, (instance,), InstanceStatus.KILLED, now, only_overdue=False)


def kill_lease(lease: LeaseState, instances: Iterable[InstanceState], *, now: datetime) -> Closure:
    """Kill the lease and every given active instance of it (terminal; idempotent)."""
    _require_aware("now", now)
    closure = _end_each(lease, instances, InstanceStatus.KILLED, now, only_overdue=False)
    return replace(closure, lease=replace(closure.lease, killed=True))


def extend(lease: LeaseState, *, units: int, now: datetime) -> LeaseState:
    """Raise the budget by ``units`` (at least ``MIN_EXTENSION``) before the lease ends."""
    _require_aware("now", now)
    _check_not_killed(lease)
    if _has_ended(lease, now):
        raise LeaseEndedError(f"lease {lease.lease_id!r} ended at {lease.terms.ends_at}")
    if units < MIN_EXTENSION:
        raise InvalidExtensionError(f"an extension adds at least {MIN_EXTENSION} unit")
    if units > MAX_UNITS - lease.budget:
        raise InvalidExtensionError(f"the budget would exceed {MAX_UNITS} units")
    return replace(lease, budget=lease.budget + units)


def set_lease_paused(lease: LeaseState, *, paused: bool) -> LeaseState:
    """Pause or resume the lease: while paused, no grant is issued and no instance enrols."""
    _check_not_killed(lease)
    return replace(lease, paused=paused)


def set_instance_paused(
    lease: LeaseState, instance: InstanceState, *, paused: bool
) -> InstanceState:
    """Pause or resume one active instance: while paused, its renewals get no grant."""
    _check_belongs(lease, instance)
    _check_active(instance)
    _check_not_killed(lease)
    return replace(instance, paused=paused)


def tally(instances: Iterable[InstanceState]) -> Tally:
    """Recompute a lease's totals from all of its instance rows."""
    committed = settled = active_usage = 0
    for instance in instances:
        committed += instance.allowance
        if instance.status is InstanceStatus.ACTIVE:
            active_usage += instance.usage
        else:
            settled += instance.allowance
    return Tally(committed=committed, settled=settled, active_usage=active_usage)


__all__ = [
    "FIRST_GRANT_SEQ",
    "MAX_HARD_EXPIRY",
    "MAX_HEARTBEAT_TTL",
    "MAX_LEASE_END",
    "MAX_UNITS",
    "MIN_EXTENSION",
    "MIN_HARD_EXPIRY",
    "MIN_HEARTBEAT_TTL",
    "MIN_SLICE_SIZE",
    "BudgetExhaustedError",
    "Closure",
    "Enrolment",
    "Grant",
    "InstanceClosedError",
    "InstanceExpiredError",
    "InstanceKilledError",
    "InstanceState",
    "InstanceStatus",
    "InvalidExtensionError",
    "LeaseEndedError",
    "LeaseKilledError",
    "LeasePausedError",
    "LeaseState",
    "LeaseTerms",
    "LeaseTermsError",
    "LedgerError",
    "Renewal",
    "Tally",
    "Unit",
    "UnknownInstanceError",
    "UsageAboveAllowanceError",
    "UsageDecreasedError",
    "Withheld",
    "close_instance",
    "closes_at",
    "current_grant",
    "enrol",
    "expire",
    "extend",
    "kill_instance",
    "kill_lease",
    "open_lease",
    "renew",
    "set_instance_paused",
    "set_lease_paused",
    "tally",
]
