"""An overseer named on a lease kills it with its own key; nothing else may pass that way.

The order travels as the overseer signed it: the custodian checks the signature against the
lease's overseer keys, applies the kill, stores the document and hands it to nodes, which
verify it against the overseer key themselves. Each refusal shows the exact error and that
the store did not change.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from modellease._hazmat import SigningKey
from modellease.cli import app
from modellease.custodian.store import AuditEntry, LeaseRow, OrderRow, connect
from modellease.keys import CustodianPublicKey
from modellease.protocol import (
    Order,
    OverseerPublicKey,
    SignedDocument,
    format_timestamp,
    sign_message,
    verify_order,
)
from modellease.testing.node import SimulatedNode
from tests.integration.custodian_server import Custodian, client, lease_spec, running_custodian

OVERSEER = SigningKey.from_seed(b"\x0b" * 32)
STRANGER = SigningKey.from_seed(b"\x0c" * 32)


@pytest.fixture
def custodian(tmp_path: Path, store_url: str) -> Iterator[Custodian]:
    with running_custodian(tmp_path, store_url) as c:
        overseers = (OVERSEER.public_bytes().hex(),)
        c.plane.create_lease(lease_spec(overseers=overseers), now=c.clock())
        c.plane.create_lease(lease_spec("lease-2"), now=c.clock())
        yield c


def order(kind: str = "kill", lease_id: str = "lease-1", **extra: object) -> Order:
    fields: dict[str, object] = {
        "order_id": "order-overseer-1",
        "lease_id": lease_id,
        "seq": 1,
        "kind": kind,
        "scope": "lease",
        "reason": "regulator: licence withdrawn",
        "issued_at": format_timestamp(datetime(2026, 11, 28, 12, tzinfo=UTC)),
    }
    return Order.model_validate(fields | extra)


def post(c: Custodian, signed: SignedDocument) -> httpx.Response:
    with client(c) as http:
        return http.post(
            "/v1/orders", content=signed.to_json(), headers={"content-type": "application/json"}
        )


def state(c: Custodian) -> tuple[object, ...]:
    engine = connect(c.engine_url)
    with Session(engine) as s:
        leases = tuple(s.execute(sa.select(LeaseRow.id, LeaseRow.killed).order_by(LeaseRow.id)))
        orders = tuple(s.scalars(sa.select(OrderRow.id)))
        entries = s.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
    engine.dispose()
    return leases, orders, entries


def test_an_overseer_kills_a_lease_with_its_own_key(custodian: Custodian) -> None:
    with client(custodian) as http:
        node = SimulatedNode(http, "lease-1", CustodianPublicKey(custodian.home.public_key))
        node.enrol()
        signed = sign_message(order(), signer=OVERSEER)
        answer = post(custodian, signed)
        assert (answer.status_code, answer.json()) == (
            200,
            {"order_id": "order-overseer-1", "kind": "kill"},
        )
        node.use(requests=1)
        renewal = node.renew()
    assert (renewal.grant, renewal.withheld) == (None, "instance_ended")
    assert [o.to_json() for o in renewal.orders] == [signed.to_json()]  # as the overseer signed
    verified = verify_order(
        renewal.orders[0],
        custodian_keys=[CustodianPublicKey(custodian.home.public_key)],
        overseer_keys=[OverseerPublicKey(OVERSEER.public_bytes())],
        lease_id="lease-1",
    )
    assert (verified.issuer, verified.order.kind) == ("overseer", "kill")
    leases, orders, _ = state(custodian)
    assert leases == (("lease-1", True), ("lease-2", False))
    assert orders == ("order-overseer-1",)
    engine = connect(custodian.engine_url)
    with Session(engine) as s:
        kills = list(s.scalars(sa.select(AuditEntry).where(AuditEntry.kind == "order_kill")))
    engine.dispose()
    assert [(e.actor, e.lease_id) for e in kills] == [(signed.key_id, "lease-1")]
    before = state(custodian)
    assert post(custodian, signed).status_code == 200  # the same order again: same answer
    assert state(custodian) == before


@pytest.mark.parametrize(
    ("attack", "status", "reason"),
    [
        ("overseer_resumes", 403, "order_not_allowed"),
        ("overseer_pauses", 403, "order_not_allowed"),
        ("key_not_named_on_the_lease", 401, "unknown_signer"),
        ("overseer_of_another_lease", 401, "unknown_signer"),
        ("custodian_key_through_the_overseer_door", 403, "order_not_allowed"),
        ("forged_signature", 401, "bad_signature"),
        ("unknown_lease", 404, "unknown_lease"),
    ],
)
def test_orders_overseers_may_not_give_are_refused(
    custodian: Custodian, attack: str, status: int, reason: str
) -> None:
    if attack == "overseer_resumes":
        signed = sign_message(order("resume"), signer=OVERSEER)
    elif attack == "overseer_pauses":
        signed = sign_message(order("pause"), signer=OVERSEER)
    elif attack == "key_not_named_on_the_lease":
        signed = sign_message(order(), signer=STRANGER)
    elif attack == "overseer_of_another_lease":
        signed = sign_message(order(lease_id="lease-2"), signer=OVERSEER)
    elif attack == "custodian_key_through_the_overseer_door":
        signed = custodian.plane.order(
            lease_id="lease-2", kind="pause", instance_id=None, reason="x", now=custodian.clock()
        )
        signed = SignedDocument.from_json(signed.to_json())
    elif attack == "forged_signature":
        genuine = sign_message(order(), signer=OVERSEER)
        signed = genuine.model_copy(update={"signature": bytes(64)})
    else:
        signed = sign_message(order(lease_id="lease-9"), signer=OVERSEER)
    before = state(custodian)
    answer = post(custodian, signed)
    assert (answer.status_code, answer.json()["reason"]) == (status, reason)
    assert state(custodian) == before


def test_overseer_cli_makes_a_key_and_kills(custodian: Custodian, tmp_path: Path) -> None:
    runner = CliRunner()
    key = tmp_path / "overseer.key"
    made = runner.invoke(app, ["overseer", "keygen", "--out", str(key)])
    assert made.exit_code == 0, made.output
    assert key.stat().st_mode & 0o777 == 0o600
    public = made.output.strip()
    again = runner.invoke(app, ["overseer", "keygen", "--out", str(key)])
    assert again.exit_code == 1
    assert "refusing to overwrite" in again.output
    custodian.plane.create_lease(lease_spec("lease-3", overseers=(public,)), now=custodian.clock())
    command = ["overseer", "kill", "lease-3", "--custodian", custodian.url, "--key", str(key)]
    killed = runner.invoke(app, [*command, "--reason", "audit failed"])
    assert killed.exit_code == 0, killed.output
    assert "accepted for lease lease-3" in killed.output
    refused = runner.invoke(
        app,
        [
            "overseer",
            "kill",
            "lease-2",
            "--custodian",
            custodian.url,
            "--key",
            str(key),
            "--reason",
            "not mine",
        ],
    )
    assert refused.exit_code == 3
    assert "401 unknown_signer" in refused.output


def test_an_order_accepted_by_another_process_is_pushed_too(custodian: Custodian) -> None:
    """With several workers, the order may be committed by a process the node is not on."""
    with client(custodian) as http, http.stream("GET", "/v1/leases/lease-1/orders") as stream:
        lines = stream.iter_lines()
        assert next(lines) == ": connected"
        elsewhere = custodian.plane.order(  # committed directly, not published by this app
            lease_id="lease-1", kind="pause", instance_id=None, reason="x", now=custodian.clock()
        )
        pushed = next(line for line in lines if line.startswith("data: "))
    assert pushed.removeprefix("data: ").encode() == elsewhere.to_json()
