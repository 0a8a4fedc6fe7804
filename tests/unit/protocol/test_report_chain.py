"""The telemetry chain: every report is exactly the next one, after the last accepted one."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modellease.protocol import (
    GENESIS_REPORT_SHA256,
    CounterDecreasedError,
    DuplicateReportError,
    ReportChainError,
    ReportForkError,
    ReportSequenceError,
    SignedDocument,
    UsageReport,
    check_report_chain,
    sign_message,
    verify_report,
)
from tests.unit.protocol.support import (
    INSTANCE,
    INSTANCE_KEY,
    INSTANCE_PUB,
    LEASE,
    T1,
    counters,
    report,
    signed_report,
)

COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "estimated_flops", "refusals")


def received(signed: SignedDocument) -> UsageReport:
    return verify_report(signed, instance_key=INSTANCE_PUB, lease_id=LEASE, instance_id=INSTANCE)


def chain(length: int) -> list[SignedDocument]:
    """An honest node's first ``length`` reports, with growing counters."""
    docs: list[SignedDocument] = []
    for seq in range(1, length + 1):
        docs.append(
            signed_report(seq, docs[-1] if docs else None, counters=counters(requests=seq * 10))
        )
    return docs


def accept(previous: SignedDocument | None, new: SignedDocument) -> None:
    check_report_chain(
        previous, None if previous is None else received(previous), new, received(new)
    )


def test_an_honest_chain_is_accepted() -> None:
    docs = chain(4)
    accept(None, docs[0])
    for prev, new in itertools.pairwise(docs):
        accept(prev, new)
    assert received(docs[0]).previous_report_sha256 == GENESIS_REPORT_SHA256
    assert received(docs[1]).previous_report_sha256 == docs[0].digest()


def test_first_report_must_be_number_one() -> None:
    with pytest.raises(ReportSequenceError, match="report 1 is missing") as exc:
        accept(None, signed_report(2, None))
    assert (exc.value.expected, exc.value.received) == (1, 2)


def test_first_report_must_start_from_genesis() -> None:
    with pytest.raises(ReportForkError):
        accept(None, sign_first_with_previous("ab" * 32))


def sign_first_with_previous(previous: str) -> SignedDocument:
    return sign_message(report(1, previous), signer=INSTANCE_KEY)


def test_report_gap_is_refused() -> None:
    docs = chain(2)
    skipped = signed_report(4, docs[1])  # report 3 never arrived
    with pytest.raises(ReportSequenceError, match="report 3 is missing") as exc:
        accept(docs[1], skipped)
    assert exc.value.reason == "report_sequence"
    assert not isinstance(exc.value, DuplicateReportError)


def test_report_replayed_is_refused() -> None:
    docs = chain(3)
    with pytest.raises(ReportSequenceError, match="already used") as exc:
        accept(docs[2], docs[1])  # an older, genuinely signed report sent again
    assert not isinstance(exc.value, DuplicateReportError)
    assert (exc.value.expected, exc.value.received) == (4, 2)


def test_report_rollback_is_refused() -> None:
    docs = chain(3)
    rolled_back = signed_report(1, None, counters=counters(requests=1))  # a fresh "first" report
    with pytest.raises(ReportSequenceError, match="replay or rollback"):
        accept(docs[2], rolled_back)


def test_report_retry_is_recognised_as_a_duplicate() -> None:
    docs = chain(2)
    with pytest.raises(DuplicateReportError, match="already accepted") as exc:
        accept(docs[1], docs[1])
    assert exc.value.reason == "report_duplicate"
    assert isinstance(exc.value, ReportSequenceError)  # a handler that forgets still refuses


def test_a_different_report_under_a_used_sequence_number_is_refused() -> None:
    docs = chain(2)
    rival = signed_report(2, docs[0], counters=counters(requests=999))
    with pytest.raises(ReportSequenceError) as exc:
        accept(docs[1], rival)
    assert not isinstance(exc.value, DuplicateReportError)


def test_report_forked_is_refused() -> None:
    docs = chain(2)
    sibling = signed_report(2, docs[0], counters=counters(requests=5))  # never accepted
    after_sibling = signed_report(3, sibling, counters=counters(requests=50))
    with pytest.raises(ReportForkError, match="does not follow report 2") as exc:
        accept(docs[1], after_sibling)
    assert exc.value.reason == "report_fork"


def test_long_gaps_are_named() -> None:
    docs = chain(1)
    with pytest.raises(ReportSequenceError, match="reports 2 to 4 are missing"):
        accept(docs[0], signed_report(5, docs[0]))


def test_report_restarting_from_genesis_is_a_fork() -> None:
    docs = chain(1)
    with pytest.raises(ReportForkError):
        accept(docs[0], signed_report(2, None))  # seq 2 but "no predecessor"


@pytest.mark.parametrize("name", COUNTERS)
def test_counters_going_down_are_refused(name: str) -> None:
    first = signed_report(1, None, counters=counters(**{name: 10}))
    second = signed_report(2, first, counters=counters(**{name: 9}))
    with pytest.raises(CounterDecreasedError, match=name) as exc:
        accept(first, second)
    assert exc.value.counters == (name,)
    assert exc.value.reason == "counter_decreased"


def test_every_counter_that_went_down_is_named() -> None:
    first = signed_report(1, None, counters=counters(requests=5, refusals=5, prompt_tokens=1))
    second = signed_report(2, first, counters=counters(prompt_tokens=2))
    with pytest.raises(CounterDecreasedError) as exc:
        accept(first, second)
    assert exc.value.counters == ("requests", "refusals")


def test_counters_may_stay_the_same() -> None:
    first = signed_report(1, None, counters=counters(requests=5))
    accept(first, signed_report(2, first, counters=counters(requests=5), reported_at=T1))


def test_caller_bugs_are_not_chain_errors() -> None:
    docs = chain(2)
    with pytest.raises(ValueError, match="or neither"):
        check_report_chain(docs[0], None, docs[1], received(docs[1]))
    with pytest.raises(ValueError, match="or neither"):
        check_report_chain(None, received(docs[0]), docs[1], received(docs[1]))
    other = report(2, docs[0].digest(), instance_id="inst-other")
    with pytest.raises(ValueError, match="different instances"):
        check_report_chain(docs[0], received(docs[0]), docs[1], other)
    other_lease = report(2, docs[0].digest(), lease_id="lease-2")
    with pytest.raises(ValueError, match="different instances"):
        check_report_chain(docs[0], received(docs[0]), docs[1], other_lease)


@settings(max_examples=50, deadline=None)
@given(
    increments=st.lists(
        st.tuples(*(st.integers(min_value=0, max_value=10**20) for _ in COUNTERS)),
        min_size=1,
        max_size=6,
    ),
    tamper=st.integers(min_value=-3, max_value=3).filter(lambda d: d != 1),
)
def test_honest_chains_pass_and_any_other_sequence_number_fails(
    increments: list[tuple[int, ...]], tamper: int
) -> None:
    totals = [0] * len(COUNTERS)
    previous: SignedDocument | None = None
    for seq, step in enumerate(increments, start=1):
        totals = [t + s for t, s in zip(totals, step, strict=True)]
        new = signed_report(
            seq, previous, counters=counters(**dict(zip(COUNTERS, totals, strict=True)))
        )
        accept(previous, new)
        previous = new
    assert previous is not None
    last = received(previous).seq
    bad_seq = last + tamper
    if bad_seq >= 1:
        with pytest.raises(ReportChainError):
            accept(previous, signed_report(bad_seq, previous))
