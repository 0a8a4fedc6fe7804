"""A grant's signed message is made of its ledger decision alone (``renewal.sign_grant``).

This is what lets a grant signed before the store's lock stand for the one the ledger then
decides: equal decisions must give the very same signed document, and any difference in a
decision a different one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from modellease._hazmat import SigningKey
from modellease.custodian import ledger
from modellease.custodian.renewal import GrantDecision, sign_grant

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
GRANT = ledger.Grant(
    lease_id="lease-1",
    instance_id="inst-1",
    unit=ledger.Unit.REQUESTS,
    seq=2,
    allowance=100,
    valid_until=NOW + timedelta(seconds=30),
)
DECISION = GrantDecision("ab" * 16, "lease-1", timedelta(seconds=60), GRANT, NOW)


def test_equal_decisions_sign_to_the_same_document() -> None:
    key = SigningKey.generate()
    again = GrantDecision("ab" * 16, "lease-1", timedelta(seconds=60), replace(GRANT), NOW)
    assert sign_grant(key, DECISION).to_json() == sign_grant(key, again).to_json()


def test_every_part_of_a_decision_shows_in_the_message() -> None:
    key = SigningKey.generate()
    first = json.loads(sign_grant(key, DECISION).payload)
    changed = [
        DECISION._replace(bundle_id="cd" * 16),
        DECISION._replace(lease_id="lease-2"),
        DECISION._replace(hard_expiry=timedelta(seconds=61)),
        DECISION._replace(now=NOW + timedelta(seconds=1)),
        DECISION._replace(grant=replace(GRANT, instance_id="inst-2")),
        DECISION._replace(grant=replace(GRANT, seq=3)),
        DECISION._replace(grant=replace(GRANT, allowance=101)),
        DECISION._replace(grant=replace(GRANT, unit=ledger.Unit.TOKENS)),
        DECISION._replace(grant=replace(GRANT, valid_until=NOW + timedelta(seconds=31))),
    ]
    for decision in changed:
        assert json.loads(sign_grant(key, decision).payload) != first, decision
