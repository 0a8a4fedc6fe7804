"""A simulated node against the real custodian server on loopback, on SQLite and PostgreSQL.

The happy path (enrol, serve, run out of budget, get an extension, be killed), then each
attack, named after it: the exact refusal, and proof that the store did not change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from modellease._hazmat import KemPrivateKey, SigningKey
from modellease.custodian.key_release import KeyUnwrapError, unwrap_data_key
from modellease.custodian.service import within_auto_approval
from modellease.custodian.store import InstanceRow, LeaseRow, NonceRow, connect
from modellease.enclave.wire import CustodianRefusedError
from modellease.keys import CustodianPublicKey
from modellease.protocol import EnrolResponse, ExtensionRequest, SignedDocument, format_timestamp
from modellease.protocol.signed import UnknownSignerError
from modellease.testing.node import SimulatedNode
from tests.integration.custodian_server import (
    BUNDLE_ID,
    Custodian,
    client,
    lease_spec,
    running_custodian,
)

_CLIENTS: list[httpx.Client] = []


@pytest.fixture
def custodian(tmp_path: Path, store_url: str) -> Iterator[Custodian]:
    with running_custodian(tmp_path, store_url) as c:
        c.plane.create_lease(lease_spec(), now=c.clock())
        try:
            yield c
        finally:
            while _CLIENTS:
                _CLIENTS.pop().close()


def http(c: Custodian) -> httpx.Client:
    opened = client(c)
    _CLIENTS.append(opened)
    return opened


def node(c: Custodian, lease_id: str = "lease-1", **extra: object) -> SimulatedNode:
    return SimulatedNode(http(c), lease_id, CustodianPublicKey(c.home.public_key), **extra)  # type: ignore[arg-type]


def snapshot(c: Custodian) -> tuple[object, ...]:
    """Everything a refusal must leave untouched (the audit log and used nonces aside)."""
    engine = connect(c.engine_url)
    with Session(engine) as s:
        lease = s.get(LeaseRow, "lease-1")
        assert lease is not None
        instances = sorted(
            (r.id, r.status, r.allowance, r.usage, r.grant_seq, r.last_report_seq)
            for r in s.scalars(sa.select(InstanceRow))
        )
        state = (
            lease.budget,
            lease.committed,
            lease.settled,
            lease.active_usage,
            lease.paused,
            lease.killed,
            tuple(instances),
        )
    engine.dispose()
    return state


def test_enrol_serve_exhaust_extend_and_kill(custodian: Custodian) -> None:
    c = custodian
    n = node(c)
    grant = n.enrol()
    assert (grant.allowance, grant.seq, grant.bundle_id) == (10, 1, BUNDLE_ID)
    assert n.data_key == b"\x07" * 32  # the DEK, unwrapped only with this instance's KEM key
    for _ in range(10, 101, 10):
        n.use(requests=10)
        answer = n.renew()
        assert answer.grant is not None
    assert n.grant is not None
    assert n.grant.allowance == 100  # the whole budget, and not one unit more
    n.use(requests=0)
    assert n.renew().grant is not None
    assert n.grant.allowance == 100
    c.plane.extend("lease-1", units=50, now=c.clock())
    n.renew()
    assert n.grant.allowance == 110
    killed = c.plane.order(
        lease_id="lease-1",
        kind="kill",
        instance_id=n.instance_id,
        reason="contract ended",
        now=c.clock(),
    )
    answer = n.renew()
    assert answer.grant is None
    assert answer.withheld == "instance_ended"
    assert [o.digest() for o in answer.orders] == [killed.digest()]


def test_retried_report_gets_the_same_answer(custodian: Custodian) -> None:
    n = node(custodian)
    n.enrol()
    n.use(requests=3)
    report = n.signed_report()
    first = n.renew(report)
    before = snapshot(custodian)
    assert n.renew(report) == first
    assert snapshot(custodian) == before


def test_replayed_nonce_is_refused(custodian: Custodian) -> None:
    a = node(custodian)
    nonce = a.nonce()
    a.enrol(nonce=nonce)
    before = snapshot(custodian)
    b = node(custodian)
    with pytest.raises(CustodianRefusedError) as refused:
        b.enrol(nonce=nonce)
    assert (refused.value.status, refused.value.refusal) == (403, "nonce_refused")
    assert snapshot(custodian) == before


def test_expired_nonce_is_refused(custodian: Custodian) -> None:
    n = node(custodian)
    nonce = n.nonce()
    custodian.clock.advance(timedelta(seconds=61))
    before = snapshot(custodian)
    with pytest.raises(CustodianRefusedError) as refused:
        n.enrol(nonce=nonce)
    assert refused.value.refusal == "nonce_refused"
    assert snapshot(custodian) == before


def test_evidence_bound_to_other_keys_is_refused(custodian: Custodian) -> None:
    """A relay replays a node's evidence but wants the key wrapped to its own KEM key."""
    victim, relay = node(custodian), node(custodian)
    nonce = victim.nonce()
    evidence = json.loads(victim.evidence_json(nonce))
    theirs = json.loads(relay.evidence_json(nonce))
    evidence["claims"] = theirs["claims"]
    before = snapshot(custodian)
    with pytest.raises(CustodianRefusedError) as refused:
        relay.enrol(
            nonce=nonce,
            evidence=json.dumps(evidence, sort_keys=True, separators=(",", ":")).encode(),
        )
    assert (refused.value.status, refused.value.refusal) == (403, "binding_mismatch")
    assert refused.value.problem["step"] == "8. binding"
    assert snapshot(custodian) == before
    engine = connect(custodian.engine_url)
    with Session(engine) as s:
        used = s.get(NonceRow, nonce.hex())
        assert used is not None
        assert used.used_at is not None  # burned: a refused nonce cannot be retried
    engine.dispose()


def test_policy_refused_measurement(custodian: Custodian) -> None:
    n = node(custodian, config=b"a modified runtime")
    before = snapshot(custodian)
    with pytest.raises(CustodianRefusedError) as refused:
        n.enrol()
    assert refused.value.refusal == "measurement_rejected"
    assert snapshot(custodian) == before


def test_simulated_evidence_on_a_lease_without_unsafe_allow_simulated(custodian: Custodian) -> None:
    policy = {
        "allowed_tees": ["tdx"],
        "tdx": {k: ["00" * 48] for k in ("mrtd", "rtmr0", "rtmr1", "rtmr2")},
    }
    custodian.plane.create_lease(lease_spec("lease-2", policy=policy), now=custodian.clock())
    n = node(custodian, "lease-2")
    with pytest.raises(CustodianRefusedError) as refused:
        n.enrol()
    assert (refused.value.refusal, refused.value.problem["step"]) == (
        "simulated_refused",
        "1. tee-allowed",
    )


@pytest.mark.parametrize("attack", ["replayed", "gap", "forked", "reordered"])
def test_report_chain_attacks_are_refused(custodian: Custodian, attack: str) -> None:
    n = node(custodian)
    n.enrol()
    n.use(requests=1)
    first = n.signed_report()
    n.renew(first)
    n.use(requests=1)
    second = n.signed_report()
    if attack == "replayed":  # an older, different report sent again after the chain moved on
        n.renew(second)
        bad = first
    elif attack == "gap":
        bad = n.signed_report(seq=n.seq + 2)
    elif attack == "forked":  # a second, different report with the same sequence number
        n.seq, n.previous_digest = 1, SignedDocument.from_json(first).digest()
        n.use(requests=5)
        n.renew(second)
        bad = n.signed_report(seq=2)
    else:
        third = n.signed_report()
        bad = third  # third before second: sequence 3 when 2 is expected
    before = snapshot(custodian)
    with pytest.raises(CustodianRefusedError) as refused:
        n.renew(bad)
    assert refused.value.status == 400
    assert refused.value.refusal in {"report_sequence", "report_fork", "report_duplicate"}
    assert snapshot(custodian) == before


def test_counters_going_down_are_refused(custodian: Custodian) -> None:
    n = node(custodian)
    n.enrol()
    n.use(requests=5)
    n.renew()
    n.counters["requests"] = 2
    before = snapshot(custodian)
    with pytest.raises(CustodianRefusedError) as refused:
        n.renew()
    assert refused.value.refusal == "counter_decreased"
    assert snapshot(custodian) == before


def test_usage_above_allowance_is_refused(custodian: Custodian) -> None:
    n = node(custodian)
    n.enrol()
    n.use(requests=11)  # the grant allowed 10
    before = snapshot(custodian)
    with pytest.raises(CustodianRefusedError) as refused:
        n.renew()
    assert (refused.value.status, refused.value.refusal) == (409, "usage_above_allowance")
    assert snapshot(custodian) == before


def test_report_signed_by_an_unknown_key_is_refused(custodian: Custodian) -> None:
    n, stranger = node(custodian), node(custodian)
    n.enrol()
    stranger.instance_id = n.instance_id
    before = snapshot(custodian)
    with pytest.raises(CustodianRefusedError) as refused:
        n.renew(stranger.signed_report())
    assert (refused.value.status, refused.value.refusal) == (401, "unknown_instance_key")
    assert snapshot(custodian) == before


def test_grant_signed_by_a_wrong_key_is_refused_by_the_node(custodian: Custodian) -> None:
    n = node(custodian)
    n.custodian_key = CustodianPublicKey(SigningKey.generate().public_bytes())
    with pytest.raises(UnknownSignerError):
        n.enrol()


def test_data_key_unwrap_by_a_different_instance_key_fails(custodian: Custodian) -> None:
    n = node(custodian)
    nonce = n.nonce()
    body = n.client.post(
        "/v1/enrol",
        content=json.dumps(
            {
                "lease_id": "lease-1",
                "nonce": nonce.hex(),
                "evidence": json.loads(n.evidence_json(nonce)),
            }
        ).encode(),
        headers={"content-type": "application/json"},
    )
    answer = EnrolResponse.model_validate_json(body.content)
    with pytest.raises(KeyUnwrapError):
        unwrap_data_key(
            KemPrivateKey.generate(),
            answer.wrapped_data_key,
            bundle_id=BUNDLE_ID,
            instance_id=answer.instance_id,
            lease_id="lease-1",
        )
    assert (
        unwrap_data_key(
            n.kem_key,
            answer.wrapped_data_key,
            bundle_id=BUNDLE_ID,
            instance_id=answer.instance_id,
            lease_id="lease-1",
        )
        == b"\x07" * 32
    )


def test_problem_json_for_malformed_requests(custodian: Custodian) -> None:
    h = http(custodian)
    response = h.post(
        "/v1/enrol", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "malformed_request"
    assert h.post("/v1/leases/nope/nonce").json()["reason"] == "unknown_lease"
    assert h.get("/healthz").json() == {"status": "ok"}


def test_dead_mans_switch_closes_a_silent_instance(custodian: Custodian) -> None:
    n = node(custodian)
    n.enrol()
    custodian.clock.advance(timedelta(seconds=91))  # TTL 30 s + hard expiry 60 s
    assert custodian.plane.expire(now=custodian.clock()) == 1
    answer = n.renew()
    assert answer.grant is None
    assert answer.withheld == "instance_ended"
    state = snapshot(custodian)
    assert state[1] == 10  # committed: the whole first slice counts as consumed
    assert state[2] == 10  # settled


def test_auto_approval_rule_approves_up_to_its_daily_limit(custodian: Custodian) -> None:
    c = custodian
    c.plane.create_lease(lease_spec("lease-auto", auto_approve_per_day=30), now=c.clock())
    ask = ExtensionRequest(
        lease_id="lease-auto",
        requester="borrower",
        units=20,
        reason="more traffic",
        requested_at=format_timestamp(c.clock()),
    )
    first = c.plane.request_extension(ask, now=c.clock(), actor="borrower:test")
    second = c.plane.request_extension(ask, now=c.clock(), actor="borrower:test")
    assert c.plane.extension_request(first).status == "approved"  # type: ignore[union-attr]
    assert c.plane.extension_request(second).status == "pending"  # 20 + 20 > 30 a day  # type: ignore[union-attr]
    lease, _ = c.plane.lease_status("lease-auto")
    assert lease.budget == 120
    c.clock.advance(timedelta(days=1, seconds=1))
    third = c.plane.request_extension(ask, now=c.clock(), actor="borrower:test")
    assert c.plane.extension_request(third).status == "approved"  # type: ignore[union-attr]


def test_auto_approval_rule() -> None:
    assert within_auto_approval(30, 0, 30)
    assert not within_auto_approval(30, 11, 20)
    assert not within_auto_approval(30, 0, 0)


def test_node_signed_extension_request(custodian: Custodian) -> None:
    n = node(custodian)
    n.enrol()
    request_id = n.request_extension(25, "traffic spike")
    row = custodian.plane.extension_request(request_id)
    assert row is not None
    assert (row.status, row.units, row.instance_id) == ("pending", 25, n.instance_id)
    custodian.plane.decide_extension(request_id, approve=True, now=custodian.clock())
    lease, _ = custodian.plane.lease_status("lease-1")
    assert lease.budget == 125
    stranger = node(custodian)
    stranger.instance_id = n.instance_id
    with pytest.raises(CustodianRefusedError) as refused:
        stranger.request_extension(1, "not mine")
    assert refused.value.refusal == "unknown_instance_key"


def test_oversized_bodies_are_refused_before_parsing(custodian: Custodian) -> None:
    h = http(custodian)
    streamed = h.post(
        "/v1/enrol",
        content=iter([b" " * (4 << 20)] * 3),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"
    assert streamed.json()["reason"] == "limit_exceeded"
