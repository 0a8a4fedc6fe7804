"""The ledger: sum of allowances <= budget, consumption never resets, refusals change nothing.

Example tests are named after the attack or failure they stop; a hypothesis state machine then
drives random sequences of enrol / renew / crash / extend / kill / pause / time passing and
checks the accounting invariant after every step. No test reads the clock or sleeps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from modellease import errors
from modellease.custodian import ledger
from modellease.custodian.ledger import (
    FIRST_GRANT_SEQ,
    MAX_HARD_EXPIRY,
    MAX_HEARTBEAT_TTL,
    MAX_LEASE_END,
    MAX_UNITS,
    MIN_HEARTBEAT_TTL,
    BudgetExhaustedError,
    InstanceClosedError,
    InstanceExpiredError,
    InstanceKilledError,
    InstanceState,
    InstanceStatus,
    InvalidExtensionError,
    LeaseEndedError,
    LeaseKilledError,
    LeasePausedError,
    LeaseState,
    LeaseTerms,
    LeaseTermsError,
    LedgerError,
    Tally,
    Unit,
    UnknownInstanceError,
    UsageAboveAllowanceError,
    UsageDecreasedError,
    Withheld,
    close_instance,
    closes_at,
    current_grant,
    enrol,
    expire,
    extend,
    kill_instance,
    kill_lease,
    open_lease,
    renew,
    set_instance_paused,
    set_lease_paused,
    tally,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=30)
HARD = timedelta(seconds=60)
ENDS = T0 + timedelta(days=1)
SLICE = 100
BUDGET = 1_000
SECOND = timedelta(seconds=1)


def terms(
    *,
    slice_size: int = SLICE,
    ttl: timedelta = TTL,
    hard: timedelta = HARD,
    ends_at: datetime = ENDS,
) -> LeaseTerms:
    return LeaseTerms(
        unit=Unit.TOKENS,
        slice_size=slice_size,
        heartbeat_ttl=ttl,
        hard_expiry=hard,
        ends_at=ends_at,
    )


def new_lease(*, budget: int = BUDGET, **kwargs: Any) -> LeaseState:
    return open_lease(lease_id="lease-1", terms=terms(**kwargs), budget=budget)


def enrolled(lease: LeaseState, name: str = "i-1", now: datetime = T0) -> ledger.Enrolment:
    return enrol(lease, instance_id=name, now=now)


def snapshot(*values: object) -> list[dict[str, Any]]:
    return [dataclasses.asdict(v) for v in values]  # type: ignore[call-overload]


# --------------------------------------------------------------------------- terms and state
@pytest.mark.parametrize(
    "kwargs",
    [
        {"slice_size": 0},
        {"slice_size": MAX_UNITS + 1},
        {"ttl": MIN_HEARTBEAT_TTL - timedelta(microseconds=1)},
        {"ttl": MAX_HEARTBEAT_TTL + SECOND},
        {"hard": -SECOND},
        {"hard": MAX_HARD_EXPIRY + SECOND},
        {"ends_at": datetime(2030, 1, 2)},  # naive: whose midnight?
        {"ends_at": MAX_LEASE_END + SECOND},
    ],
    ids=repr,
)
def test_terms_outside_limits_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LeaseTermsError):
        terms(**kwargs)


@pytest.mark.parametrize("budget", [-1, MAX_UNITS + 1])
def test_open_lease_refuses_budget_outside_limits(budget: int) -> None:
    with pytest.raises(LeaseTermsError):
        new_lease(budget=budget)


def test_open_lease_starts_with_nothing_granted() -> None:
    lease = new_lease()
    assert (lease.committed, lease.consumed, lease.remaining) == (0, 0, BUDGET)
    assert not lease.paused
    assert not lease.killed


def good_lease_fields() -> dict[str, Any]:
    return {
        "lease_id": "lease-1",
        "terms": terms(),
        "budget": 10,
        "paused": False,
        "killed": False,
        "committed": 6,
        "settled": 2,
        "active_usage": 4,
    }


@pytest.mark.parametrize(
    "change",
    [
        {"lease_id": ""},
        {"budget": -1},
        {"budget": MAX_UNITS + 1, "committed": 0, "settled": 0, "active_usage": 0},
        {"committed": 11},  # more granted than the budget: the invariant itself
        {"settled": 7},
        {"settled": -1},
        {"active_usage": 5},  # more used than the active instances hold
        {"active_usage": -1},
    ],
    ids=repr,
)
def test_corrupt_lease_totals_are_refused(change: dict[str, Any]) -> None:
    LeaseState(**good_lease_fields())  # the baseline is consistent
    with pytest.raises(ValueError):  # noqa: PT011 -- message varies by rule
        LeaseState(**(good_lease_fields() | change))


def good_instance_fields() -> dict[str, Any]:
    return {
        "instance_id": "i-1",
        "lease_id": "lease-1",
        "status": InstanceStatus.ACTIVE,
        "allowance": 10,
        "usage": 4,
        "grant_seq": FIRST_GRANT_SEQ,
        "valid_until": T0,
        "paused": False,
        "enrolled_at": T0,
        "ended_at": None,
    }


@pytest.mark.parametrize(
    "change",
    [
        {"instance_id": ""},
        {"lease_id": ""},
        {"usage": 11},
        {"usage": -1},
        {"allowance": MAX_UNITS + 1},
        {"grant_seq": FIRST_GRANT_SEQ - 1},
        {"valid_until": datetime(2030, 1, 1)},
        {"enrolled_at": datetime(2030, 1, 1)},
        {"ended_at": T0},  # active instances have not ended
        {"status": InstanceStatus.CLOSED},  # ended instances say when
        {"status": InstanceStatus.KILLED, "ended_at": datetime(2030, 1, 1)},
    ],
    ids=repr,
)
def test_corrupt_instance_rows_are_refused(change: dict[str, Any]) -> None:
    InstanceState(**good_instance_fields())
    with pytest.raises(ValueError):  # noqa: PT011 -- message varies by rule
        InstanceState(**(good_instance_fields() | change))


NAIVE = datetime(2030, 1, 1)  # deliberately naive


@pytest.mark.parametrize(
    "call",
    [
        lambda lease, inst: enrol(lease, instance_id="i-2", now=NAIVE),
        lambda lease, inst: renew(lease, inst, usage=0, now=NAIVE),
        lambda lease, inst: expire(lease, [inst], now=NAIVE),
        lambda lease, inst: close_instance(lease, inst, now=NAIVE),
        lambda lease, inst: kill_instance(lease, inst, now=NAIVE),
        lambda lease, inst: kill_lease(lease, [inst], now=NAIVE),
        lambda lease, inst: extend(lease, units=1, now=NAIVE),
    ],
)
def test_naive_now_is_a_caller_bug(call: Callable[[LeaseState, InstanceState], object]) -> None:
    e = enrolled(new_lease())
    with pytest.raises(ValueError, match="timezone-aware"):
        call(e.lease, e.instance)


# --------------------------------------------------------------------------- enrol
def test_enrol_first_grant_is_one_slice() -> None:
    e = enrolled(new_lease())
    assert e.grant == ledger.Grant(
        lease_id="lease-1",
        instance_id="i-1",
        unit=Unit.TOKENS,
        seq=FIRST_GRANT_SEQ,
        allowance=SLICE,
        valid_until=T0 + TTL,
    )
    assert e.instance.status is InstanceStatus.ACTIVE
    assert (e.instance.usage, e.instance.headroom, e.instance.enrolled_at) == (0, SLICE, T0)
    assert (e.lease.committed, e.lease.remaining, e.lease.consumed) == (SLICE, BUDGET - SLICE, 0)


def test_enrol_cannot_take_more_than_remains() -> None:
    e = enrolled(new_lease(budget=SLICE + 30))
    e2 = enrolled(e.lease, "i-2")
    assert e2.grant.allowance == 30
    assert e2.lease.remaining == 0


def test_enrol_grant_never_outlives_the_lease() -> None:
    e = enrolled(new_lease(), now=ENDS - SECOND)
    assert e.grant.valid_until == ENDS


def test_enrol_refused_when_budget_is_exhausted() -> None:
    lease = enrolled(new_lease(budget=SLICE)).lease
    with pytest.raises(BudgetExhaustedError):
        enrolled(lease, "i-2")
    with pytest.raises(BudgetExhaustedError):
        enrolled(new_lease(budget=0))


def test_enrol_refused_once_the_lease_has_ended() -> None:
    with pytest.raises(LeaseEndedError):
        enrolled(new_lease(), now=ENDS)


def test_enrol_refused_while_the_lease_is_paused() -> None:
    lease = set_lease_paused(new_lease(), paused=True)
    with pytest.raises(LeasePausedError):
        enrolled(lease)
    assert enrolled(set_lease_paused(lease, paused=False)).grant.allowance == SLICE


def test_enrol_refused_on_a_killed_lease() -> None:
    lease = kill_lease(new_lease(), [], now=T0).lease
    with pytest.raises(LeaseKilledError):
        enrolled(lease)


# --------------------------------------------------------------------------- renew
def test_renew_tops_up_headroom_to_one_slice() -> None:
    e = enrolled(new_lease())
    r = renew(e.lease, e.instance, usage=70, now=T0 + 10 * SECOND)
    assert r.withheld is None
    assert r.grant is not None
    assert (r.grant.allowance, r.grant.seq) == (170, FIRST_GRANT_SEQ + 1)
    assert r.grant.valid_until == T0 + 10 * SECOND + TTL
    assert r.instance.headroom == SLICE
    assert (r.lease.committed, r.lease.consumed, r.lease.active_usage) == (170, 70, 70)


def test_renew_heartbeats_without_usage_do_not_hoard_budget() -> None:
    e = enrolled(new_lease())
    lease, instance = e.lease, e.instance
    for beat in range(1, 6):
        r = renew(lease, instance, usage=0, now=T0 + beat * TTL / 2)
        lease, instance = r.lease, r.instance
        assert r.grant is not None
        assert r.grant.allowance == SLICE
        assert r.grant.seq == FIRST_GRANT_SEQ + beat
    assert instance.valid_until == T0 + 5 * TTL / 2 + TTL
    assert lease.committed == SLICE


def test_renew_top_up_is_capped_by_remaining_budget() -> None:
    e = enrolled(new_lease(budget=150))
    r = renew(e.lease, e.instance, usage=SLICE, now=T0 + SECOND)
    assert r.grant is not None
    assert r.grant.allowance == 150
    assert r.lease.remaining == 0


def test_renew_with_exhausted_budget_keeps_the_instance_alive_without_units() -> None:
    e = enrolled(new_lease(budget=SLICE))
    r = renew(e.lease, e.instance, usage=SLICE, now=T0 + 20 * SECOND)
    assert r.grant is not None
    assert r.grant.allowance == SLICE
    assert r.instance.headroom == 0
    assert r.grant.valid_until == T0 + 20 * SECOND + TTL
    # more budget unblocks the next renewal
    lease = extend(r.lease, units=40, now=T0 + 21 * SECOND)
    r2 = renew(lease, r.instance, usage=SLICE, now=T0 + 22 * SECOND)
    assert r2.grant is not None
    assert r2.grant.allowance == SLICE + 40


def test_renew_rejects_usage_going_down() -> None:
    e = enrolled(new_lease())
    r = renew(e.lease, e.instance, usage=50, now=T0 + SECOND)
    with pytest.raises(UsageDecreasedError) as caught:
        renew(r.lease, r.instance, usage=49, now=T0 + 2 * SECOND)
    assert caught.value.reason == "usage_decreased"
    with pytest.raises(UsageDecreasedError):
        renew(e.lease, e.instance, usage=-1, now=T0 + SECOND)


def test_renew_rejects_usage_above_allowance() -> None:
    e = enrolled(new_lease())
    with pytest.raises(UsageAboveAllowanceError) as caught:
        renew(e.lease, e.instance, usage=SLICE + 1, now=T0 + SECOND)
    assert caught.value.reason == "usage_above_allowance"
    assert renew(e.lease, e.instance, usage=SLICE, now=T0 + SECOND).instance.usage == SLICE


def test_renew_rejects_an_instance_of_another_lease() -> None:
    e = enrolled(new_lease())
    other = open_lease(lease_id="lease-2", terms=terms(), budget=BUDGET)
    with pytest.raises(UnknownInstanceError):
        renew(other, e.instance, usage=0, now=T0 + SECOND)
    with pytest.raises(UnknownInstanceError):
        current_grant(other, e.instance)


def test_renew_rejects_a_closed_instance() -> None:
    e = enrolled(new_lease())
    c = close_instance(e.lease, e.instance, now=T0 + SECOND)
    with pytest.raises(InstanceClosedError):
        renew(c.lease, c.ended[0], usage=0, now=T0 + 2 * SECOND)


def test_renew_rejects_a_killed_instance() -> None:
    e = enrolled(new_lease())
    k = kill_instance(e.lease, e.instance, now=T0 + SECOND)
    with pytest.raises(InstanceKilledError):
        renew(k.lease, k.ended[0], usage=0, now=T0 + 2 * SECOND)


def test_renew_rejects_a_stray_active_instance_of_a_killed_lease() -> None:
    e = enrolled(new_lease())
    lease = kill_lease(e.lease, [], now=T0 + SECOND).lease  # the row was missed
    with pytest.raises(LeaseKilledError):
        renew(lease, e.instance, usage=0, now=T0 + 2 * SECOND)


def test_renew_rejects_an_instance_past_hard_expiry_even_before_the_sweep() -> None:
    e = enrolled(new_lease())
    deadline = closes_at(e.lease, e.instance)
    assert deadline == T0 + TTL + HARD
    assert renew(e.lease, e.instance, usage=0, now=deadline - SECOND).grant is not None
    with pytest.raises(InstanceExpiredError):
        renew(e.lease, e.instance, usage=0, now=deadline)


def test_renew_while_the_lease_is_paused_records_usage_but_grants_nothing() -> None:
    e = enrolled(new_lease())
    lease = set_lease_paused(e.lease, paused=True)
    r = renew(lease, e.instance, usage=60, now=T0 + SECOND)
    assert (r.grant, r.withheld) == (None, Withheld.LEASE_PAUSED)
    assert (r.instance.usage, r.instance.allowance, r.instance.grant_seq) == (60, SLICE, 1)
    assert r.instance.valid_until == e.instance.valid_until
    assert (r.lease.consumed, r.lease.committed) == (60, SLICE)


def test_renew_while_the_instance_is_paused_grants_nothing() -> None:
    e = enrolled(new_lease())
    paused = set_instance_paused(e.lease, e.instance, paused=True)
    r = renew(e.lease, paused, usage=10, now=T0 + SECOND)
    assert (r.grant, r.withheld) == (None, Withheld.INSTANCE_PAUSED)
    resumed = set_instance_paused(r.lease, r.instance, paused=False)
    r2 = renew(r.lease, resumed, usage=10, now=T0 + 2 * SECOND)
    assert r2.grant is not None
    assert r2.grant.allowance == 10 + SLICE


def test_renew_after_the_lease_ended_records_final_usage_without_a_grant() -> None:
    e = enrolled(new_lease(), now=ENDS - 10 * SECOND)
    r = renew(e.lease, e.instance, usage=SLICE, now=ENDS)
    assert (r.grant, r.withheld) == (None, Withheld.LEASE_ENDED)
    assert r.lease.consumed == SLICE
    assert r.lease.committed == SLICE


def test_renew_valid_until_never_moves_back_when_the_clock_does() -> None:
    e = enrolled(new_lease(), now=T0 + 20 * SECOND)
    r = renew(e.lease, e.instance, usage=0, now=T0)
    assert r.grant is not None
    assert r.grant.valid_until == e.grant.valid_until


def test_current_grant_replays_the_latest_grant() -> None:
    e = enrolled(new_lease())
    r = renew(e.lease, e.instance, usage=5, now=T0 + SECOND)
    assert current_grant(r.lease, r.instance) == r.grant
    assert current_grant(e.lease, e.instance) == e.grant


def test_refusals_leave_every_input_unchanged() -> None:
    e = enrolled(new_lease(budget=SLICE))
    before = snapshot(e.lease, e.instance)
    attempts: list[Callable[[], object]] = [
        lambda: renew(e.lease, e.instance, usage=SLICE + 1, now=T0 + SECOND),
        lambda: renew(e.lease, e.instance, usage=-1, now=T0 + SECOND),
        lambda: renew(e.lease, e.instance, usage=0, now=T0 + TTL + HARD),
        lambda: enrol(e.lease, instance_id="i-2", now=T0),
        lambda: extend(e.lease, units=0, now=T0),
        lambda: extend(e.lease, units=1, now=ENDS),
    ]
    for attempt in attempts:
        with pytest.raises(LedgerError):
            attempt()
        assert snapshot(e.lease, e.instance) == before


# --------------------------------------------------------------------------- dead man's switch
def test_crash_and_reenrol_does_not_reset_consumption() -> None:
    e = enrolled(new_lease(budget=200))
    r = renew(e.lease, e.instance, usage=30, now=T0 + SECOND)  # allowance 130
    crash_time = closes_at(r.lease, r.instance)
    swept = expire(r.lease, [r.instance], now=crash_time)
    assert [i.status for i in swept.ended] == [InstanceStatus.CLOSED]
    assert swept.ended[0].ended_at == crash_time
    assert swept.lease.consumed == 130  # the whole allowance, not the 30 reported
    again = enrolled(swept.lease, "i-1-reborn", now=crash_time)
    assert again.grant.allowance == 200 - 130  # the old allowance stays counted
    assert again.lease.consumed == 130
    assert again.lease.remaining == 0
    with pytest.raises(BudgetExhaustedError):
        enrolled(again.lease, "i-1-third", now=crash_time)


def test_expire_closes_only_instances_past_hard_expiry() -> None:
    lease = new_lease()
    a = enrolled(lease, "a")
    b = enrolled(a.lease, "b", now=T0 + 10 * SECOND)
    closed = close_instance(b.lease, b.instance, now=T0 + 11 * SECOND)
    lease = closed.lease
    sweep_at = T0 + TTL + HARD
    result = expire(lease, [a.instance, closed.ended[0]], now=sweep_at)
    assert [i.instance_id for i in result.ended] == ["a"]
    assert expire(result.lease, [a.instance], now=sweep_at - SECOND).ended == ()
    assert result.lease.consumed == 2 * SLICE


def test_expire_refuses_the_same_instance_twice() -> None:
    e = enrolled(new_lease())
    with pytest.raises(ValueError, match="twice"):
        expire(e.lease, [e.instance, e.instance], now=ENDS)


def test_expire_refuses_an_instance_of_another_lease() -> None:
    e = enrolled(new_lease())
    other = open_lease(lease_id="lease-2", terms=terms(), budget=BUDGET)
    with pytest.raises(UnknownInstanceError):
        expire(other, [e.instance], now=ENDS)


def test_long_pause_ends_instances_by_the_dead_mans_switch() -> None:
    e = enrolled(new_lease())
    lease = set_lease_paused(e.lease, paused=True)
    r = renew(lease, e.instance, usage=1, now=T0 + TTL)  # heartbeat, no grant
    with pytest.raises(InstanceExpiredError):
        renew(r.lease, r.instance, usage=1, now=T0 + TTL + HARD)
    swept = expire(r.lease, [r.instance], now=T0 + TTL + HARD)
    assert swept.lease.consumed == SLICE


# --------------------------------------------------------------------------- kill and close
def test_close_counts_the_whole_allowance_as_consumed() -> None:
    e = enrolled(new_lease())
    r = renew(e.lease, e.instance, usage=10, now=T0 + SECOND)
    c = close_instance(r.lease, r.instance, now=T0 + 2 * SECOND)
    assert c.lease.consumed == 110
    assert c.lease.remaining == BUDGET - 110  # unused headroom is never handed back


def test_kill_instance_is_terminal_and_idempotent() -> None:
    e = enrolled(new_lease())
    k = kill_instance(e.lease, e.instance, now=T0 + SECOND)
    (killed,) = k.ended
    assert (killed.status, killed.ended_at) == (InstanceStatus.KILLED, T0 + SECOND)
    assert k.lease.consumed == SLICE
    again = kill_instance(k.lease, killed, now=T0 + 2 * SECOND)
    assert (again.lease, again.ended) == (k.lease, ())
    closed_later = close_instance(k.lease, killed, now=T0 + 2 * SECOND)
    assert closed_later.ended == ()
    with pytest.raises(InstanceKilledError):
        set_instance_paused(k.lease, killed, paused=False)


def test_kill_lease_kills_every_instance_and_is_terminal() -> None:
    a = enrolled(new_lease(), "a")
    b = enrolled(a.lease, "b")
    k = kill_lease(b.lease, [a.instance, b.instance], now=T0 + SECOND)
    assert k.lease.killed
    assert {i.status for i in k.ended} == {InstanceStatus.KILLED}
    assert k.lease.consumed == 2 * SLICE
    again = kill_lease(k.lease, k.ended, now=T0 + 2 * SECOND)
    assert (again.lease, again.ended) == (k.lease, ())
    for refused in (
        lambda: enrolled(k.lease, "c"),
        lambda: extend(k.lease, units=1, now=T0),
        lambda: set_lease_paused(k.lease, paused=False),
        lambda: set_instance_paused(k.lease, a.instance, paused=True),
    ):
        with pytest.raises(LeaseKilledError):
            refused()


def test_pausing_a_closed_instance_is_refused() -> None:
    e = enrolled(new_lease())
    c = close_instance(e.lease, e.instance, now=T0)
    with pytest.raises(InstanceClosedError):
        set_instance_paused(c.lease, c.ended[0], paused=True)


# --------------------------------------------------------------------------- extend
def test_extend_raises_the_budget() -> None:
    lease = extend(new_lease(), units=500, now=T0)
    assert (lease.budget, lease.remaining) == (BUDGET + 500, BUDGET + 500)


@pytest.mark.parametrize("units", [0, -1, -BUDGET])
def test_extend_cannot_shrink_the_budget(units: int) -> None:
    with pytest.raises(InvalidExtensionError):
        extend(new_lease(), units=units, now=T0)


def test_extend_cannot_overflow_the_budget_limit() -> None:
    lease = extend(new_lease(), units=MAX_UNITS - BUDGET, now=T0)
    assert lease.budget == MAX_UNITS
    with pytest.raises(InvalidExtensionError):
        extend(lease, units=1, now=T0)


def test_extend_refused_after_the_lease_ended() -> None:
    with pytest.raises(LeaseEndedError):
        extend(new_lease(), units=1, now=ENDS)


# --------------------------------------------------------------------------- tally and errors
def test_tally_recounts_the_lease_totals_from_rows() -> None:
    a = enrolled(new_lease(), "a")
    b = enrolled(a.lease, "b")
    r = renew(b.lease, b.instance, usage=40, now=T0 + SECOND)
    k = kill_instance(r.lease, a.instance, now=T0 + SECOND)
    counted = tally([k.ended[0], r.instance])
    assert counted == Tally(committed=240, settled=100, active_usage=40)
    assert counted.consumed == k.lease.consumed == 140
    assert (counted.committed, counted.settled) == (k.lease.committed, k.lease.settled)


def test_every_ledger_error_is_invalid_input_with_its_own_reason() -> None:
    classes = [
        getattr(ledger, n)
        for n in ledger.__all__
        if isinstance(getattr(ledger, n), type) and issubclass(getattr(ledger, n), Exception)
    ]
    assert len(classes) == 13
    assert all(issubclass(c, errors.InvalidInputError) for c in classes)
    mine = [c.reason for c in classes]
    theirs = [getattr(errors, n).reason for n in errors.__all__]
    assert len(set(mine)) == len(mine)
    assert not set(mine) & set(theirs)


def test_ledger_all_is_sorted_and_resolves() -> None:
    def kind(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[:1].isupper() else 2), name

    assert ledger.__all__ == sorted(ledger.__all__, key=kind)
    assert all(hasattr(ledger, name) for name in ledger.__all__)


# --------------------------------------------------------------------------- state machine
USAGE_KINDS = st.sampled_from(["valid", "valid", "valid", "same", "down", "above", "wild"])


class LedgerMachine(RuleBasedStateMachine):
    """Random enrol / renew / crash / extend / kill / pause / time passing against a model."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.lease = new_lease()
        self.rows: dict[str, InstanceState] = {}
        self.ended_allowance: dict[str, int] = {}
        self.last_allowance: dict[str, int] = {}
        self.last_seq: dict[str, int] = {}
        self.consumed = 0
        self.budget = 0
        self.names = 0

    @initialize(
        budget=st.integers(0, 600),
        slice_size=st.integers(1, 150),
        ttl_s=st.integers(1, 60),
        hard_s=st.integers(0, 120),
        life_s=st.integers(1, 1_200),
    )
    def open(self, budget: int, slice_size: int, ttl_s: int, hard_s: int, life_s: int) -> None:
        self.lease = open_lease(
            lease_id="lease-1",
            terms=terms(
                slice_size=slice_size,
                ttl=timedelta(seconds=ttl_s),
                hard=timedelta(seconds=hard_s),
                ends_at=T0 + timedelta(seconds=life_s),
            ),
            budget=budget,
        )

    # ----------------------------------------------------------------- helpers
    def active(self) -> list[str]:
        return sorted(n for n, i in self.rows.items() if i.status is InstanceStatus.ACTIVE)

    def refused_unchanged(self, error: type[LedgerError], call: Callable[[], object]) -> None:
        before = snapshot(self.lease, *self.rows.values())
        with pytest.raises(error):
            call()
        assert snapshot(self.lease, *self.rows.values()) == before

    def sweep(self) -> None:
        overdue = {
            n for n in self.active() if self.now >= self.rows[n].valid_until + self.hard_expiry
        }
        result = expire(self.lease, list(self.rows.values()), now=self.now)
        assert {i.instance_id for i in result.ended} == overdue
        self.apply_closure(result)

    def apply_closure(self, closure: ledger.Closure) -> None:
        self.lease = closure.lease
        for instance in closure.ended:
            assert instance.status is not InstanceStatus.ACTIVE
            assert self.rows[instance.instance_id].status is InstanceStatus.ACTIVE
            self.rows[instance.instance_id] = instance
            self.ended_allowance[instance.instance_id] = instance.allowance

    @property
    def hard_expiry(self) -> timedelta:
        return self.lease.terms.hard_expiry

    @property
    def ended(self) -> bool:
        return self.now >= self.lease.terms.ends_at

    # ----------------------------------------------------------------- rules
    @rule()
    def enrol_node(self) -> None:
        name = f"i-{self.names}"
        self.names += 1
        call = lambda: enrol(self.lease, instance_id=name, now=self.now)  # noqa: E731
        if self.lease.killed:
            self.refused_unchanged(LeaseKilledError, call)
        elif self.ended:
            self.refused_unchanged(LeaseEndedError, call)
        elif self.lease.paused:
            self.refused_unchanged(LeasePausedError, call)
        elif self.lease.remaining == 0:
            self.refused_unchanged(BudgetExhaustedError, call)
        else:
            expected = min(self.lease.terms.slice_size, self.lease.remaining)
            result = enrol(self.lease, instance_id=name, now=self.now)
            assert result.grant.allowance == expected
            assert self.now < result.grant.valid_until <= self.lease.terms.ends_at
            self.lease = result.lease
            self.rows[name] = result.instance

    @precondition(lambda self: bool(self.active()))
    @rule(data=st.data(), kind=USAGE_KINDS, zombie=st.sampled_from([False] * 4 + [True]))
    def renew_node(self, data: st.DataObject, kind: str, zombie: bool) -> None:
        """Mostly live nodes; sometimes a closed or killed one that tries to come back."""
        name = data.draw(st.sampled_from(self.active() if not zombie else sorted(self.rows)))
        row = self.rows[name]
        usage = {
            "valid": lambda: data.draw(st.integers(row.usage, row.allowance)),
            "same": lambda: row.usage,
            "down": lambda: row.usage - data.draw(st.integers(1, 50)),
            "above": lambda: row.allowance + data.draw(st.integers(1, 50)),
            "wild": lambda: data.draw(st.integers(-10, 1_000)),
        }[kind]()
        call = lambda: renew(self.lease, row, usage=usage, now=self.now)  # noqa: E731
        expected: type[LedgerError] | None = None
        if row.status is InstanceStatus.KILLED:
            expected = InstanceKilledError
        elif row.status is InstanceStatus.CLOSED:
            expected = InstanceClosedError
        elif self.lease.killed:
            expected = LeaseKilledError
        elif self.now >= row.valid_until + self.hard_expiry:
            expected = InstanceExpiredError
        elif usage < row.usage:
            expected = UsageDecreasedError
        elif usage > row.allowance:
            expected = UsageAboveAllowanceError
        if expected is not None:
            self.refused_unchanged(expected, call)
            return
        remaining = self.lease.remaining
        result = renew(self.lease, row, usage=usage, now=self.now)
        assert result.instance.usage == usage
        if self.ended or self.lease.paused or row.paused:
            assert result.grant is None
            assert result.withheld is not None
            assert result.instance.allowance == row.allowance
            assert result.instance.grant_seq == row.grant_seq
        else:
            assert result.grant is not None
            slice_size = self.lease.terms.slice_size
            want = max(row.allowance, min(usage + slice_size, row.allowance + remaining))
            assert result.grant.allowance == want
            assert result.grant.seq == row.grant_seq + 1
            assert row.valid_until <= result.grant.valid_until <= self.lease.terms.ends_at
        self.lease = result.lease
        self.rows[name] = result.instance

    @precondition(lambda self: bool(self.active()))
    @rule(data=st.data())
    def fleet_heartbeat(self, data: st.DataObject) -> None:
        """Every live node reports a valid usage, as a healthy fleet does each TTL."""
        for name in self.active():
            row = self.rows[name]
            if self.lease.killed or self.now >= closes_at(self.lease, row):
                continue
            usage = data.draw(st.integers(row.usage, row.allowance))
            result = renew(self.lease, row, usage=usage, now=self.now)
            assert (result.grant is None) == (self.ended or self.lease.paused or row.paused)
            self.lease = result.lease
            self.rows[name] = result.instance

    @precondition(lambda self: bool(self.active()))
    @rule(data=st.data(), late_s=st.integers(0, 10))
    def crash(self, data: st.DataObject, late_s: int) -> None:
        """A node stops renewing; time passes its hard expiry; the sweep closes it."""
        name = data.draw(st.sampled_from(self.active()))
        self.now = max(self.now, closes_at(self.lease, self.rows[name])) + late_s * SECOND
        self.sweep()
        assert self.rows[name].status is InstanceStatus.CLOSED

    @rule(seconds=st.integers(0, 40), sweep=st.booleans())
    def time_passes(self, seconds: int, sweep: bool) -> None:
        """Time advances; the service's expiry sweep may or may not run in between."""
        self.now += seconds * SECOND
        if sweep:
            self.sweep()

    @rule(seconds=st.integers(1, 30))
    def clock_steps_back(self, seconds: int) -> None:
        self.now -= seconds * SECOND

    @rule(units=st.integers(-5, 300))
    def extend_budget(self, units: int) -> None:
        call = lambda: extend(self.lease, units=units, now=self.now)  # noqa: E731
        if self.lease.killed:
            self.refused_unchanged(LeaseKilledError, call)
        elif self.ended:
            self.refused_unchanged(LeaseEndedError, call)
        elif units < 1:
            self.refused_unchanged(InvalidExtensionError, call)
        else:
            self.lease = extend(self.lease, units=units, now=self.now)

    @precondition(lambda self: bool(self.rows))
    @rule(data=st.data(), kill=st.booleans())
    def end_instance(self, data: st.DataObject, kill: bool) -> None:
        name = data.draw(st.sampled_from(sorted(self.rows)))
        end = kill_instance if kill else close_instance
        result = end(self.lease, self.rows[name], now=self.now)
        was_active = self.rows[name].status is InstanceStatus.ACTIVE
        assert len(result.ended) == int(was_active)
        self.apply_closure(result)

    @precondition(lambda self: len(self.rows) >= 2)
    @rule(dice=st.integers(0, 9))
    def kill_whole_lease(self, dice: int) -> None:
        if dice < 9:  # rare: everything after a lease kill is a refusal
            return
        self.apply_closure(kill_lease(self.lease, list(self.rows.values()), now=self.now))
        assert self.lease.killed
        assert not self.active()

    @rule(paused=st.booleans())
    def pause_lease(self, paused: bool) -> None:
        if self.lease.killed:
            self.refused_unchanged(
                LeaseKilledError, lambda: set_lease_paused(self.lease, paused=paused)
            )
        else:
            self.lease = set_lease_paused(self.lease, paused=paused)

    @precondition(lambda self: bool(self.active()) and not self.lease.killed)
    @rule(data=st.data(), paused=st.booleans())
    def pause_instance(self, data: st.DataObject, paused: bool) -> None:
        name = data.draw(st.sampled_from(self.active()))
        self.rows[name] = set_instance_paused(self.lease, self.rows[name], paused=paused)

    # ----------------------------------------------------------------- invariants
    @invariant()
    def accounting_holds(self) -> None:
        lease = self.lease
        counted = tally(self.rows.values())
        assert (counted.committed, counted.settled, counted.active_usage) == (
            lease.committed,
            lease.settled,
            lease.active_usage,
        )
        assert lease.committed <= lease.budget
        assert lease.remaining >= 0
        assert lease.budget >= self.budget
        assert lease.consumed >= self.consumed
        self.budget, self.consumed = lease.budget, lease.consumed

    @invariant()
    def instances_behave(self) -> None:
        for name, row in self.rows.items():
            assert 0 <= row.usage <= row.allowance
            assert row.allowance >= self.last_allowance.get(name, 0)
            assert row.grant_seq >= self.last_seq.get(name, FIRST_GRANT_SEQ)
            assert row.valid_until <= self.lease.terms.ends_at
            if name in self.ended_allowance:
                assert row.status is not InstanceStatus.ACTIVE
                assert row.allowance == self.ended_allowance[name]
            self.last_allowance[name] = row.allowance
            self.last_seq[name] = row.grant_seq


LedgerMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_ledger_state_machine = LedgerMachine.TestCase
