"""The meter never lets work start beyond the allowance, whatever the interleaving."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from modellease.enclave import AllowanceExhaustedError, Meter, Reservation, estimated_flops


def test_reserve_settle_release_and_the_counters() -> None:
    meter = Meter(allowance=100)
    a = meter.reserve(60)
    b = meter.reserve(40)
    with pytest.raises(AllowanceExhaustedError, match="needs up to 1 units; the grant has 0 left"):
        meter.reserve(1)
    meter.settle(a, units=25, prompt_tokens=5, completion_tokens=20, flops=estimated_flops(10, 25))
    meter.release(b)
    usage = meter.usage()
    assert (usage.used, usage.reserved, usage.available) == (25, 0, 75)
    assert (usage.requests, usage.prompt_tokens, usage.completion_tokens) == (1, 5, 20)
    assert (usage.estimated_flops, usage.refusals) == (500, 1)


def test_a_refused_request_reserves_nothing() -> None:
    meter = Meter(allowance=10)
    before = meter.usage()
    with pytest.raises(AllowanceExhaustedError) as refused:
        meter.reserve(11)
    assert refused.value.reason == "allowance_exhausted"
    after = meter.usage()
    assert (after.used, after.reserved, after.refusals) == (before.used, before.reserved, 1)


def test_a_new_grant_raises_the_allowance_and_never_lowers_it() -> None:
    meter = Meter(allowance=10)
    meter.settle(meter.reserve(10), units=10)
    with pytest.raises(AllowanceExhaustedError):
        meter.reserve(1)
    meter.set_allowance(15)
    meter.settle(meter.reserve(5), units=5)
    with pytest.raises(ValueError, match="never goes down"):
        meter.set_allowance(14)
    assert meter.usage().allowance == 15


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, r: m.settle(r, units=6), "between 0 and the 5 units"),
        (lambda m, r: m.settle(r, units=-1), "between 0 and the 5 units"),
        (lambda m, r: m.settle(r, units=1, prompt_tokens=-1), "cannot be negative"),
        (lambda m, r: m.reserve(0), "at least one unit"),
        (lambda m, r: m.release(Reservation(id=r.id, units=4)), "not open"),
        (lambda m, r: m.release(Reservation(id=999, units=5)), "not open"),
    ],
)
def test_caller_bugs_are_value_errors_and_change_nothing(call: object, message: str) -> None:
    meter = Meter(allowance=10)
    reservation = meter.reserve(5)
    before = meter.usage()
    with pytest.raises(ValueError, match=message):
        call(meter, reservation)  # type: ignore[operator]
    assert meter.usage() == before


def test_a_reservation_closes_exactly_once() -> None:
    meter = Meter(allowance=10)
    reservation = meter.reserve(5)
    meter.settle(reservation, units=5)
    with pytest.raises(ValueError, match="not open"):
        meter.release(reservation)
    with pytest.raises(ValueError, match="not open"):
        meter.settle(reservation, units=1)
    assert meter.usage().used == 5


def test_bad_construction_and_flop_estimates() -> None:
    with pytest.raises(ValueError, match="negative"):
        Meter(allowance=-1)
    with pytest.raises(ValueError, match="negative"):
        estimated_flops(-1, 3)
    assert estimated_flops(135_000_000, 100) == 27_000_000_000


@settings(max_examples=25, deadline=None)
@given(
    allowance=st.integers(min_value=0, max_value=200),
    costs=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=300),
)
def test_concurrent_requests_never_serve_more_than_the_allowance(
    allowance: int, costs: list[int]
) -> None:
    """Many threads race to reserve; each settles its full reservation or is refused."""
    meter = Meter(allowance=allowance)
    served: list[int] = []
    start = threading.Barrier(8)

    def worker(mine: list[int]) -> None:
        start.wait()
        for cost in mine:
            try:
                reservation = meter.reserve(cost)
            except AllowanceExhaustedError:
                continue
            meter.settle(reservation, units=cost)
            served.append(cost)

    threads = [threading.Thread(target=worker, args=(costs[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    usage = meter.usage()
    assert sum(served) == usage.used <= allowance
    assert usage.reserved == 0
    assert usage.requests + usage.refusals == len(costs)


class MeterMachine(RuleBasedStateMachine):
    """Random reserve / settle / release / new grant: the invariant holds after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.meter = Meter(allowance=0)
        self.open: list[Reservation] = []
        self.allowance = 0
        self.used = 0

    @rule(units=st.integers(min_value=1, max_value=20))
    def reserve(self, units: int) -> None:
        fits = self.used + sum(r.units for r in self.open) + units <= self.allowance
        try:
            self.open.append(self.meter.reserve(units))
        except AllowanceExhaustedError:
            assert not fits
        else:
            assert fits

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        reservation = self.open.pop(data.draw(st.integers(0, len(self.open) - 1)))
        units = data.draw(st.integers(0, reservation.units))
        self.meter.settle(reservation, units=units)
        self.used += units

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        self.meter.release(self.open.pop(data.draw(st.integers(0, len(self.open) - 1))))

    @rule(more=st.integers(min_value=0, max_value=30))
    def new_grant(self, more: int) -> None:
        self.allowance += more
        self.meter.set_allowance(self.allowance)

    @invariant()
    def never_beyond_the_allowance(self) -> None:
        usage = self.meter.usage()
        assert usage.used == self.used
        assert usage.reserved == sum(r.units for r in self.open)
        assert usage.used + usage.reserved <= usage.allowance == self.allowance


TestMeterMachine = MeterMachine.TestCase
