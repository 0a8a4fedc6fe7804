"""Renewals judged many per transaction: each report on its own, in order, one commit.

A batch must behave exactly like the same reports sent one by one: a refused report changes
nothing and does not disturb the others; reports of one instance are taken in order; a retry
inside the same batch gets the answer stored a moment earlier. And the HTTP server really
does group concurrent renewals (``RenewalBatcher``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from modellease.custodian import renewal, service
from modellease.custodian.batcher import RenewalBatcher
from modellease.custodian.renewal import Prepared, RenewalRequest, UnknownReporterError
from modellease.custodian.service import ControlPlane
from modellease.custodian.store import AuditEntry, GrantRow, ReportRow, connect
from modellease.keys import CustodianPublicKey
from modellease.protocol import RenewResponse, SignedDocument, verify_grant
from modellease.protocol.messages import MAX_ORDERS_PER_RESPONSE, ReportChainError
from modellease.protocol.signed import BadSignatureError, DocumentFormatError
from modellease.testing.node import SimulatedNode
from tests.integration.custodian_server import Custodian, client, lease_spec, running_custodian

_NODES: list[SimulatedNode] = []


@pytest.fixture
def custodian(tmp_path: Path, store_url: str) -> Iterator[Custodian]:
    with running_custodian(tmp_path, store_url) as c:
        c.plane.create_lease(lease_spec(budget=1000), now=c.clock())
        try:
            yield c
        finally:
            while _NODES:
                _NODES.pop().client.close()


def nodes(c: Custodian, count: int, *, enrol: bool = True) -> list[SimulatedNode]:
    key = CustodianPublicKey(c.home.public_key)
    made = [SimulatedNode(client(c), "lease-1", key) for _ in range(count)]
    _NODES.extend(made)
    for n in made:
        if enrol:
            n.enrol()
    return made


def report(n: SimulatedNode, requests: int = 1) -> SignedDocument:
    n.use(requests=requests)
    return SignedDocument.from_json(n.signed_report())


def _answer(outcome: str | BaseException) -> RenewResponse:
    """A renewal's outcome, which must be an answer (its JSON), parsed."""
    assert isinstance(outcome, str), outcome
    return RenewResponse.model_validate_json(outcome)


def stored(c: Custodian) -> tuple[list[tuple[str, int]], list[str]]:
    """The stored reports (instance, seq) and the audit kinds, in order."""
    engine = connect(c.engine_url)
    with Session(engine) as s:
        reports = [(r.instance_id, r.seq) for r in s.scalars(sa.select(ReportRow))]
        kinds = list(s.scalars(sa.select(AuditEntry.kind).order_by(AuditEntry.seq)))
    engine.dispose()
    return sorted(reports), kinds


def test_a_batch_answers_each_report_as_if_sent_alone(custodian: Custodian) -> None:
    a, b = nodes(custodian, 2)
    (stranger,) = nodes(custodian, 1, enrol=False)
    a1, a2, b1 = report(a), report(a), report(b)
    stranger.instance_id = b.instance_id
    forged = report(stranger)  # b's instance id, signed by a key no instance holds
    gap_bad = SignedDocument.from_json(b.signed_report(seq=b.seq + 5))
    _, kinds_before = stored(custodian)
    batch = [a1, forged, a2, a2, b1, gap_bad, a1]
    outcomes = custodian.plane.renew_batch([RenewalRequest.of(s, custodian.clock()) for s in batch])

    assert [type(o).__name__ for o in outcomes] == [
        "str",  # the answer's JSON
        "UnknownReporterError",
        "str",
        "str",  # a2 again: a retry of the last report, inside the same batch
        "str",
        "ReportSequenceError",  # a gap
        "ReportSequenceError",  # a1 after a2: a replay
    ]
    assert isinstance(outcomes[1], UnknownReporterError)
    assert str(outcomes[5]) == "expected report 2, got 6: reports 2 to 5 are missing (a gap)"
    assert str(outcomes[6]) == (
        "expected report 3, got 1: sequence 1 was already used (a replay or rollback)"
    )
    assert outcomes[3] == outcomes[2]  # the stored answer, byte for byte, not a second grant
    for n, outcome in ((a, outcomes[2]), (b, outcomes[4])):
        answer = _answer(outcome)
        assert answer.grant is not None
        verify_grant(
            answer.grant,
            custodian_keys=[CustodianPublicKey(custodian.home.public_key)],
            lease_id="lease-1",
            instance_id=str(n.instance_id),
        )
    reports, kinds = stored(custodian)
    assert reports == sorted([(a.instance_id, 1), (a.instance_id, 2), (b.instance_id, 1)])
    assert kinds == [*kinds_before, "usage_report", "usage_report", "usage_report"]


class CountingPlane(ControlPlane):
    """The real control plane, noting the size of every batch it is given."""

    sizes: list[int]

    def renew_batch(
        self, requests: Sequence[RenewalRequest], prepared: Sequence[Prepared] | None = None
    ) -> list[str | Exception]:
        self.sizes.append(len(requests))
        return super().renew_batch(requests, prepared)


def test_concurrent_renewals_share_one_batch(custodian: Custodian) -> None:
    senders = nodes(custodian, 8)
    plane = custodian.plane
    counting = CountingPlane.__new__(CountingPlane)
    counting.__dict__.update(plane.__dict__)
    counting.sizes = []
    batcher = RenewalBatcher(counting)
    reports = [report(n) for n in senders]

    async def send_all() -> list[str]:
        now = custodian.clock()
        return await asyncio.gather(*(batcher.renew(RenewalRequest.of(r, now)) for r in reports))

    answers = asyncio.run(send_all())
    assert counting.sizes == [8]  # all were pending before the first batch started
    assert all(_answer(a).grant is not None for a in answers)
    assert len(stored(custodian)[0]) == 8


def test_a_refused_report_in_a_batch_raises_for_its_sender_only(custodian: Custodian) -> None:
    good, bad = nodes(custodian, 2)
    batcher = RenewalBatcher(custodian.plane)
    bad_report = report(bad)
    bad_report = bad_report.model_copy(update={"signature": bytes(64)})

    async def send_both() -> list[str | BaseException]:
        now = custodian.clock()
        return await asyncio.gather(
            batcher.renew(RenewalRequest.of(report(good), now)),
            batcher.renew(RenewalRequest.of(bad_report, now)),
            return_exceptions=True,
        )

    ok, refused = asyncio.run(send_both())
    assert _answer(ok).grant is not None
    assert type(refused).__name__ == "BadSignatureError"
    assert stored(custodian)[0] == [(good.instance_id, 1)]


def fresh_process_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """What another worker process sees: no cached keys, no cached last reports."""
    monkeypatch.setattr(renewal, "_CACHES", renewal.new_caches())


def test_the_chain_holds_across_processes_that_do_not_share_caches(
    custodian: Custodian, monkeypatch: pytest.MonkeyPatch
) -> None:
    (n,) = nodes(custodian, 1)
    first = report(n)
    assert isinstance(custodian.plane.renew(first, now=custodian.clock()), RenewResponse)
    second = report(n)
    fresh_process_caches(monkeypatch)  # the next report reaches another worker
    assert custodian.plane.renew(second, now=custodian.clock()).grant is not None
    fresh_process_caches(monkeypatch)
    assert custodian.plane.renew(second, now=custodian.clock()).grant is not None  # a retry
    fresh_process_caches(monkeypatch)
    with pytest.raises(ReportChainError, match="sequence 1 was already used"):
        custodian.plane.renew(first, now=custodian.clock())
    assert stored(custodian)[0] == [(n.instance_id, 1), (n.instance_id, 2)]


def test_a_forged_report_from_a_known_instance_is_refused_before_the_lock(
    custodian: Custodian,
) -> None:
    (n,) = nodes(custodian, 1)
    custodian.plane.renew(report(n), now=custodian.clock())  # its key is now known here
    forged = report(n).model_copy(update={"signature": bytes(64)})
    request = RenewalRequest.of(forged, custodian.clock())
    early = custodian.plane.prepare_renewal(request)
    assert isinstance(early.refusal, BadSignatureError)
    before = stored(custodian)
    (outcome,) = custodian.plane.renew_batch([request])
    assert isinstance(outcome, BadSignatureError)
    assert stored(custodian) == before


def test_a_long_order_history_still_fits_every_answer(custodian: Custodian) -> None:
    """More orders than an answer may carry: the latest ones and every kill go in."""
    (n,) = nodes(custodian, 1)
    plane, now = custodian.plane, custodian.clock()
    kinds = ["pause", "resume"] * (MAX_ORDERS_PER_RESPONSE // 2 + 5)
    for kind in kinds:
        plane.order(lease_id="lease-1", kind=kind, instance_id=None, reason="x", now=now)
    kill = plane.order(
        lease_id="lease-1", kind="kill", instance_id=n.instance_id, reason="x", now=now
    )
    plane.order(lease_id="lease-1", kind="pause", instance_id=None, reason="x", now=now)
    answer = custodian.plane.renew(report(n), now=now)
    assert len(answer.orders) == MAX_ORDERS_PER_RESPONSE
    assert kill.to_json() in [o.to_json() for o in answer.orders]
    seqs = [json.loads(o.payload)["seq"] for o in answer.orders]
    assert seqs == sorted(seqs)
    assert seqs[-1] == len(kinds) + 2  # the newest order is there


def test_a_cache_left_behind_by_another_worker_is_never_trusted(
    custodian: Custodian, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A cached report 1; worker B accepted report 2; A must read report 2 itself."""
    (n,) = nodes(custodian, 1)
    now = custodian.clock()
    custodian.plane.renew(report(n), now=now)
    worker_a = renewal._CACHES  # holds report 1
    fresh_process_caches(monkeypatch)
    second = report(n)
    custodian.plane.renew(second, now=now)  # on worker B
    monkeypatch.setattr(renewal, "_CACHES", worker_a)
    retry = custodian.plane.renew(second, now=now)  # back on A: a retry, not a replay
    assert retry.grant is not None
    assert custodian.plane.renew(report(n), now=now).grant is not None  # and the chain goes on
    assert [seq for _, seq in stored(custodian)[0]] == [1, 2, 3]


def _grant_seq(answer: RenewResponse) -> int:
    assert answer.grant is not None
    return int(json.loads(answer.grant.payload)["seq"])


def test_a_grant_signed_before_the_lock_is_the_one_sent_when_the_ledger_agrees(
    custodian: Custodian,
) -> None:
    (n,) = nodes(custodian, 1)
    custodian.plane.renew(report(n), now=custodian.clock())  # this process now knows n
    request = RenewalRequest.of(report(n), custodian.clock())
    prepared = custodian.plane.prepare_renewal(request)
    assert prepared.speculation is not None
    (outcome,) = custodian.plane.renew_batch([request], [prepared])
    assert outcome == prepared.speculation.response_json  # no second signature under the lock
    answer = _answer(outcome)
    assert answer.grant == prepared.speculation.signed
    engine = connect(custodian.engine_url)
    with Session(engine) as s:
        stored_grant = s.scalars(sa.select(GrantRow.signed_json).order_by(GrantRow.seq)).all()[-1]
    engine.dispose()
    assert stored_grant == answer.grant.to_json().decode()
    assert (
        _grant_seq(answer) == prepared.speculation.decision.grant.seq == 3
    )  # enrolment's grant was 1


def test_a_grant_signed_from_stale_states_is_never_sent(
    custodian: Custodian, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A saw report 1; worker B took report 2; A's guess for report 3 is one grant late."""
    (n,) = nodes(custodian, 1)
    custodian.plane.renew(report(n), now=custodian.clock())
    worker_a = renewal._CACHES
    fresh_process_caches(monkeypatch)
    custodian.plane.renew(report(n), now=custodian.clock())  # on worker B
    monkeypatch.setattr(renewal, "_CACHES", worker_a)
    request = RenewalRequest.of(report(n), custodian.clock())
    prepared = custodian.plane.prepare_renewal(request)
    assert prepared.speculation is not None
    assert prepared.speculation.decision.grant.seq == 3  # what A expects after report 1's grant (2)
    answer = _answer(custodian.plane.renew_batch([request], [prepared])[0])
    assert answer.grant is not None
    assert answer.grant.to_json() != prepared.speculation.signed.to_json()
    assert _grant_seq(answer) == 4  # the ledger's own decision, signed under the lock
    verify_grant(
        answer.grant,
        custodian_keys=[CustodianPublicKey(custodian.home.public_key)],
        lease_id="lease-1",
        instance_id=str(n.instance_id),
    )


def test_a_grant_signed_before_a_kill_is_never_sent(custodian: Custodian) -> None:
    (n,) = nodes(custodian, 1)
    plane = custodian.plane
    plane.renew(report(n), now=custodian.clock())
    request = RenewalRequest.of(report(n), custodian.clock())
    prepared: Prepared = plane.prepare_renewal(request)
    assert prepared.speculation is not None
    plane.order(lease_id="lease-1", kind="kill", instance_id=None, reason="x", now=request.now)
    answer = _answer(plane.renew_batch([request], [prepared])[0])
    assert answer.grant is None
    assert answer.withheld == "instance_ended"
    assert [json.loads(o.payload)["kind"] for o in answer.orders] == ["kill"]


def test_a_report_is_stored_in_the_very_bytes_it_arrived_in(custodian: Custodian) -> None:
    (n,) = nodes(custodian, 1)
    n.use(requests=1)
    raw = n.signed_report()
    request = RenewalRequest.received(raw, custodian.clock())
    assert request.wire == raw == request.signed.to_json()  # only the canonical form parses
    assert RenewalRequest.of(request.signed, request.now).wire == raw
    assert custodian.plane.renew_batch([request])[0]
    engine = connect(custodian.engine_url)
    with Session(engine) as s:
        assert s.scalars(sa.select(ReportRow.signed_json)).one() == raw.decode()
    engine.dispose()


def test_a_non_canonical_report_is_refused_as_it_arrives(custodian: Custodian) -> None:
    (n,) = nodes(custodian, 1)
    n.use(requests=1)
    spaced = json.dumps(json.loads(n.signed_report()), indent=1).encode()
    with pytest.raises(DocumentFormatError, match="canonical"):
        RenewalRequest.received(spaced, custodian.clock())


def test_a_batch_that_does_not_commit_leaves_the_caches_as_they_were(
    custodian: Custodian, monkeypatch: pytest.MonkeyPatch
) -> None:
    (n,) = nodes(custodian, 1)
    fresh_process_caches(monkeypatch)
    decide = service.renew_batch

    def decide_then_fail(*args: object, **kwargs: object) -> renewal.BatchResult:
        decide(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("the disk is full")  # as a failed COMMIT would

    monkeypatch.setattr(service, "renew_batch", decide_then_fail)
    signed = report(n)
    (outcome,) = custodian.plane.renew_batch([RenewalRequest.of(signed, custodian.clock())])
    assert isinstance(outcome, RuntimeError)
    assert renewal._CACHES.seen.get(signed.key_id) is None
    assert stored(custodian)[0] == []
    monkeypatch.setattr(service, "renew_batch", decide)
    assert custodian.plane.renew(signed, now=custodian.clock()).grant is not None
    assert renewal._CACHES.seen.get(signed.key_id) is not None  # remembered once committed


def test_a_retry_in_a_later_batch_gets_the_stored_answer_byte_for_byte(
    custodian: Custodian, monkeypatch: pytest.MonkeyPatch
) -> None:
    (n,) = nodes(custodian, 1)
    request = RenewalRequest.of(report(n), custodian.clock())
    (first,) = custodian.plane.renew_batch([request])
    fresh_process_caches(monkeypatch)  # read back from the store, not from this process's memory
    (again,) = custodian.plane.renew_batch([RenewalRequest.of(request.signed, custodian.clock())])
    assert isinstance(first, str)
    assert again == first
    assert stored(custodian)[0] == [(n.instance_id, 1)]
