"""The lease keeper: only fresh, genuine grants count; kill is terminal; time is a parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modellease._hazmat import SigningKey
from modellease.enclave import (
    ADMITTED,
    GrantRefusedError,
    GrantSequenceError,
    LeaseKeeper,
    NodeStoppedError,
)
from modellease.keys import CustodianPublicKey
from modellease.protocol import (
    Grant,
    Order,
    OverseerPublicKey,
    SignedDocument,
    format_timestamp,
    sign_message,
)
from modellease.protocol.messages import OrderNotAllowedError, WrongSubjectError
from modellease.protocol.signed import BadSignatureError, UnknownSignerError

CUSTODIAN = SigningKey.from_seed(b"\x01" * 32)
OVERSEER = SigningKey.from_seed(b"\x02" * 32)
STRANGER = SigningKey.from_seed(b"\x03" * 32)
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)
HARD = timedelta(seconds=60)
TICK = timedelta(seconds=1)  # the smallest step a timestamp can express


def keeper() -> LeaseKeeper:
    return LeaseKeeper(
        lease_id="lease-1",
        instance_id="inst-1",
        custodian_key=CustodianPublicKey(CUSTODIAN.public_bytes()),
        overseer_keys=[OverseerPublicKey(OVERSEER.public_bytes())],
    )


def grant(seq: int, allowance: int = 10, *, at: datetime = T0, **extra: object) -> SignedDocument:
    fields: dict[str, object] = {
        "lease_id": "lease-1",
        "instance_id": "inst-1",
        "bundle_id": "ab" * 16,
        "seq": seq,
        "allowance": allowance,
        "unit": "requests",
        "issued_at": format_timestamp(at),
        "valid_until": format_timestamp(at + TTL),
        "hard_expiry_at": format_timestamp(at + TTL + HARD),
    }
    signer = extra.pop("signer", CUSTODIAN)
    return sign_message(Grant.model_validate(fields | extra), signer=signer)  # type: ignore[arg-type]


def order(
    kind: str, seq: int, *, signer: SigningKey = CUSTODIAN, **extra: object
) -> SignedDocument:
    fields: dict[str, object] = {
        "order_id": f"order-{kind}-{seq}",
        "lease_id": "lease-1",
        "seq": seq,
        "kind": kind,
        "scope": "lease",
        "reason": "test",
        "issued_at": format_timestamp(T0),
    }
    return sign_message(Order.model_validate(fields | extra), signer=signer)


def state(k: LeaseKeeper) -> tuple[object, ...]:
    return (k.grant, k.killed, k.paused, k.admission(T0 + TICK))


def test_serving_follows_the_grant_and_its_times() -> None:
    k = keeper()
    assert k.admission(T0).reason == "no_grant"
    k.accept_grant(grant(1), now=T0)
    assert k.admission(T0) == ADMITTED
    assert k.grant_valid_at(T0 + TTL - TICK)
    lapsed = k.admission(T0 + TTL)
    assert (lapsed.allowed, lapsed.status, lapsed.reason) == (False, 503, "grant_expired")
    assert not k.must_drop_model(T0 + TTL + HARD - TICK)
    k.accept_grant(grant(2, 20, at=T0 + TTL), now=T0 + TTL)  # a renewal revives serving
    assert k.admission(T0 + TTL) == ADMITTED


def test_dead_mans_switch_after_the_hard_expiry() -> None:
    k = keeper()
    k.accept_grant(grant(1), now=T0)
    dead = T0 + TTL + HARD
    assert (k.admission(dead).status, k.admission(dead).reason) == (503, "expired")
    assert k.must_drop_model(dead)
    with pytest.raises(NodeStoppedError, match="needs a new enrolment"):
        k.accept_grant(grant(2, at=dead), now=dead)
    assert k.grant is not None
    assert k.grant.seq == 1


@pytest.mark.parametrize(
    ("attack", "error", "reason"),
    [
        ("replayed_grant", GrantSequenceError, "grant_sequence"),
        ("older_grant", GrantSequenceError, "grant_sequence"),
        ("allowance_going_down", GrantRefusedError, "grant_refused"),
        ("grant_signed_by_a_stranger", UnknownSignerError, "unknown_signer"),
        ("grant_signed_by_an_overseer", UnknownSignerError, "unknown_signer"),
        ("forged_signature", BadSignatureError, "bad_signature"),
        ("grant_for_another_instance", WrongSubjectError, "wrong_subject"),
    ],
)
def test_bad_grants_are_refused_and_change_nothing(
    attack: str, error: type[Exception], reason: str
) -> None:
    k = keeper()
    k.accept_grant(grant(1), now=T0)
    k.accept_grant(grant(2, 20), now=T0)
    bad = {
        "replayed_grant": lambda: grant(2, 20),
        "older_grant": lambda: grant(1),
        "allowance_going_down": lambda: grant(3, 19),
        "grant_signed_by_a_stranger": lambda: grant(3, 30, signer=STRANGER),
        "grant_signed_by_an_overseer": lambda: grant(3, 30, signer=OVERSEER),
        "forged_signature": lambda: grant(3, 30).model_copy(update={"signature": bytes(64)}),
        "grant_for_another_instance": lambda: grant(3, 30, instance_id="inst-2"),
    }[attack]()
    before = state(k)
    with pytest.raises(error) as refused:
        k.accept_grant(bad, now=T0)
    assert getattr(refused.value, "reason", None) == reason
    assert state(k) == before


def test_kill_is_terminal() -> None:
    k = keeper()
    k.accept_grant(grant(1), now=T0)
    assert k.accept_order(order("kill", 1)) is not None
    assert (k.admission(T0).status, k.admission(T0).reason) == (410, "killed")
    assert k.must_drop_model(T0)
    assert k.accept_order(order("resume", 2)) is not None  # applied, and changes nothing
    assert k.killed
    with pytest.raises(NodeStoppedError):
        k.accept_grant(grant(2), now=T0)


def test_pause_and_resume_in_sequence_and_history_fed_again() -> None:
    k = keeper()
    k.accept_grant(grant(1), now=T0)
    history = [order("pause", 1), order("resume", 2)]
    assert k.accept_order(history[0]) is not None
    assert k.admission(T0).reason == "paused"
    assert k.accept_order(history[1]) is not None
    assert k.admission(T0) == ADMITTED
    for again in history:  # every renewal answer carries the whole history
        assert k.accept_order(again) is None
    assert k.admission(T0) == ADMITTED
    stale_pause = order("pause", 1, order_id="order-pause-replayed")
    assert k.accept_order(stale_pause) is None  # an older pause cannot undo a later resume
    assert k.admission(T0) == ADMITTED


def test_orders_for_another_instance_are_ignored() -> None:
    k = keeper()
    k.accept_grant(grant(1), now=T0)
    other = order("kill", 1, scope="instance", instance_id="inst-2")
    assert k.accept_order(other) is None
    mine = order("kill", 2, scope="instance", instance_id="inst-1")
    assert k.accept_order(mine) is not None
    assert k.killed


def test_an_overseer_may_kill_with_its_own_key_and_nothing_else() -> None:
    k = keeper()
    k.accept_grant(grant(1), now=T0)
    before = state(k)
    with pytest.raises(OrderNotAllowedError):
        k.accept_order(order("pause", 7, signer=OVERSEER))
    with pytest.raises(UnknownSignerError):
        k.accept_order(order("kill", 7, signer=STRANGER))
    with pytest.raises(WrongSubjectError):
        k.accept_order(order("kill", 7, signer=OVERSEER, lease_id="lease-2"))
    assert state(k) == before
    k.accept_order(order("pause", 5))  # the custodian's sequence is at 5 now
    assert k.accept_order(order("kill", 1, signer=OVERSEER)) is not None  # outside that sequence
    assert k.killed
