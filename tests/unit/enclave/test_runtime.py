"""The node runtime: admission then reservation, grants through the keeper, reports resent
until answered, extension requests at most once per allowance, the off-switch enforced."""

from __future__ import annotations

import pytest

from modellease._hazmat import SigningKey
from modellease.enclave import AllowanceExhaustedError, GrantSequenceError
from modellease.enclave.runtime import NodeRuntime, ServiceRefusedError
from modellease.protocol import ExtensionRequest, RenewResponse, UsageReport, verify_document
from modellease.protocol.receipts import Receipt
from modellease.protocol.signed import UnknownSignerError
from tests.unit.enclave.test_keeper import (
    HARD,
    OVERSEER,
    STRANGER,
    T0,
    TICK,
    TTL,
    grant,
    keeper,
    order,
)

INSTANCE = SigningKey.from_seed(b"\x09" * 32)


class FakeEngine:
    """Only what the runtime touches: close() and closed (the real engines are tested apart)."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def runtime(allowance: int = 10) -> tuple[NodeRuntime, FakeEngine]:
    k = keeper()
    k.accept_grant(grant(1, allowance), now=T0)
    engine = FakeEngine()
    return NodeRuntime(keeper=k, signer=INSTANCE, engine=engine), engine


def test_a_runtime_needs_a_keeper_holding_a_grant() -> None:
    with pytest.raises(ValueError, match="no grant"):
        NodeRuntime(keeper=keeper(), signer=INSTANCE, engine=FakeEngine())


def test_requests_are_admitted_then_reserved_then_settled() -> None:
    rt, _ = runtime(10)
    reservation = rt.begin(4, now=T0)
    rt.finish(reservation, units=3, prompt_tokens=2, completion_tokens=1, flops=6)
    dropped = rt.begin(5, now=T0)
    rt.abandon(dropped)
    usage = rt.meter.usage()
    assert (usage.used, usage.reserved, usage.requests, usage.estimated_flops) == (3, 0, 1, 6)
    with pytest.raises(AllowanceExhaustedError):
        rt.begin(8, now=T0)


def test_no_reservation_while_the_keeper_refuses() -> None:
    rt, _ = runtime(10)
    rt.take_order(order("pause", 1), now=T0)
    with pytest.raises(ServiceRefusedError) as refused:
        rt.begin(1, now=T0)
    assert (refused.value.status, refused.value.refusal) == (503, "paused")
    assert rt.meter.usage().reserved == 0
    with pytest.raises(ServiceRefusedError) as late:
        rt.admit(now=T0 + TTL)
    assert late.value.refusal == "paused"


def test_an_unanswered_report_is_sent_again_as_it_is() -> None:
    rt, _ = runtime(10)
    first = rt.report(now=T0)
    rt.finish(rt.begin(1, now=T0), units=1)
    assert rt.report(now=T0 + TICK) is first
    rt.answered(RenewResponse(grant=grant(2, 20)), now=T0 + TICK)
    second = rt.report(now=T0 + TICK)
    assert second is not first
    report = UsageReport.model_validate_json(
        verify_document(
            second, payload_type=UsageReport.PAYLOAD_TYPE, trusted_keys=[INSTANCE.public_bytes()]
        )
    )
    assert (report.seq, report.counters.requests) == (2, 1)
    assert rt.meter.usage().allowance == 20


def test_a_forged_grant_in_an_answer_changes_nothing_but_its_orders_count() -> None:
    rt, _ = runtime(10)
    report = rt.report(now=T0)
    forged = grant(2, 1000, signer=STRANGER)
    with pytest.raises(UnknownSignerError):
        rt.answered(RenewResponse(grant=forged, orders=[order("pause", 1)]), now=T0)
    assert rt.meter.usage().allowance == 10
    assert rt.keeper.grant is not None
    assert rt.keeper.grant.seq == 1
    assert rt.keeper.paused
    assert rt.report(now=T0) is not report  # answered: the next report is a new one


def test_a_replayed_grant_is_refused() -> None:
    rt, _ = runtime(10)
    rt.report(now=T0)
    with pytest.raises(GrantSequenceError):
        rt.answered(RenewResponse(grant=grant(1, 10)), now=T0)
    assert rt.keeper.grant is not None
    assert rt.keeper.grant.seq == 1


def test_a_kill_drops_the_engine_and_no_grant_is_taken_after_it() -> None:
    rt, engine = runtime(10)
    rt.report(now=T0)
    rt.answered(RenewResponse(grant=grant(2, 20), orders=[order("kill", 1)]), now=T0)
    assert engine.closed
    assert rt.meter.usage().allowance == 10
    with pytest.raises(ServiceRefusedError) as refused:
        rt.begin(1, now=T0)
    assert (refused.value.status, refused.value.refusal) == (410, "killed")
    assert rt.enforce(T0) is True  # idempotent


def test_the_dead_mans_switch_drops_the_engine_at_the_hard_expiry() -> None:
    rt, engine = runtime(10)
    assert rt.enforce(T0 + TTL) is False
    assert not engine.closed
    assert rt.enforce(T0 + TTL + HARD) is True
    assert engine.closed
    assert not rt.status(T0 + TTL + HARD).model_loaded


def test_an_extension_is_asked_once_when_the_slice_is_low_and_did_not_grow() -> None:
    rt, _ = runtime(10)
    assert rt.extension_request(now=T0) is None  # the enrolment grant just grew it
    rt.finish(rt.begin(8, now=T0), units=8)
    assert rt.slice_low()
    rt.report(now=T0)
    rt.answered(RenewResponse(grant=grant(2, 10)), now=T0)  # no more budget
    signed = rt.extension_request(now=T0)
    assert signed is not None
    request = ExtensionRequest.model_validate_json(
        verify_document(
            signed,
            payload_type=ExtensionRequest.PAYLOAD_TYPE,
            trusted_keys=[INSTANCE.public_bytes()],
        )
    )
    assert (request.requester, request.instance_id, request.units) == ("instance", "inst-1", 10)
    assert rt.extension_request(now=T0) is None  # once per allowance
    rt.report(now=T0)
    rt.answered(RenewResponse(grant=grant(3, 20)), now=T0)
    assert rt.extension_request(now=T0) is None  # it grew: no request


def test_no_extension_request_after_a_kill() -> None:
    rt, _ = runtime(10)
    rt.finish(rt.begin(10, now=T0), units=10)
    rt.report(now=T0)
    rt.answered(RenewResponse(orders=[order("kill", 1)]), now=T0)
    assert rt.extension_request(now=T0) is None


def test_status_counts_only() -> None:
    rt, _ = runtime(10)
    rt.finish(rt.begin(2, now=T0), units=2, prompt_tokens=5)
    rt.report(now=T0)
    status = rt.status(T0)
    assert (status.lease_id, status.instance_id, status.grant_seq, status.reports) == (
        "lease-1",
        "inst-1",
        1,
        1,
    )
    assert status.admission.allowed
    assert status.model_loaded
    assert status.usage.prompt_tokens == 5


def test_overseer_orders_go_through_the_keeper() -> None:
    rt, engine = runtime(10)
    applied = rt.take_order(order("kill", 1, signer=OVERSEER), now=T0)
    assert applied is not None
    assert applied.kind == "kill"
    assert engine.closed


def test_receipts_name_the_instance_that_signs_them() -> None:
    node, _ = runtime()
    payload = node.receipts.issue(
        bundle_id="ab" * 16,
        model_sha256="00" * 32,
        request_sha256="00" * 32,
        response_sha256="00" * 32,
        units=1,
        unit="requests",
        now=T0,
    )
    receipt = Receipt.model_validate_json(payload)
    assert (receipt.lease_id, receipt.instance_id) == (node.lease_id, node.instance_id)
    assert node.receipts.seal(T0) is not None
