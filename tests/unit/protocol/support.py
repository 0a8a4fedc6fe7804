"""Keys and well-formed messages for the protocol tests: fixed seeds, fixed times."""

from __future__ import annotations

from typing import Any

from modellease._hazmat import SigningKey
from modellease.keys import CustodianPublicKey, InstanceSigningKey
from modellease.protocol import (
    GENESIS_REPORT_SHA256,
    ExtensionRequest,
    Grant,
    Order,
    OverseerPublicKey,
    SignedDocument,
    UsageCounters,
    UsageReport,
    sign_message,
)

LEASE = "lease-1"
INSTANCE = "inst-7f3a"
BUNDLE = "0123456789abcdef0123456789abcdef"
T0 = "2026-11-28T12:00:00Z"
T1 = "2026-11-28T12:05:00Z"
T2 = "2026-11-28T13:00:00Z"

CUSTODIAN = SigningKey.from_seed(b"\x01" * 32)
OTHER_CUSTODIAN = SigningKey.from_seed(b"\x02" * 32)
OVERSEER = SigningKey.from_seed(b"\x03" * 32)
INSTANCE_KEY = SigningKey.from_seed(b"\x04" * 32)
OTHER_INSTANCE_KEY = SigningKey.from_seed(b"\x05" * 32)

CUSTODIAN_PUB = CustodianPublicKey(CUSTODIAN.public_bytes())
OVERSEER_PUB = OverseerPublicKey(OVERSEER.public_bytes())
INSTANCE_PUB = InstanceSigningKey(INSTANCE_KEY.public_bytes())


def grant(**changes: Any) -> Grant:
    fields: dict[str, Any] = {
        "lease_id": LEASE,
        "instance_id": INSTANCE,
        "bundle_id": BUNDLE,
        "seq": 1,
        "allowance": 1000,
        "unit": "tokens",
        "issued_at": T0,
        "valid_until": T1,
        "hard_expiry_at": T2,
    }
    return Grant(**(fields | changes))


def counters(**changes: int) -> UsageCounters:
    fields = {
        "requests": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "estimated_flops": 0,
        "refusals": 0,
    }
    return UsageCounters(**(fields | changes))


def report(seq: int = 1, previous: str = GENESIS_REPORT_SHA256, **changes: Any) -> UsageReport:
    fields: dict[str, Any] = {
        "lease_id": LEASE,
        "instance_id": INSTANCE,
        "seq": seq,
        "previous_report_sha256": previous,
        "counters": counters(),
        "reported_at": T0,
    }
    return UsageReport(**(fields | changes))


def order(**changes: Any) -> Order:
    fields: dict[str, Any] = {
        "order_id": "order-1",
        "lease_id": LEASE,
        "seq": 1,
        "kind": "kill",
        "scope": "lease",
        "reason": "budget dispute",
        "issued_at": T0,
    }
    return Order(**(fields | changes))


def extension(**changes: Any) -> ExtensionRequest:
    fields: dict[str, Any] = {
        "lease_id": LEASE,
        "requester": "instance",
        "instance_id": INSTANCE,
        "units": 500,
        "reason": "quarter-end batch",
        "requested_at": T0,
    }
    return ExtensionRequest(**(fields | changes))


def signed_report(seq: int, previous: SignedDocument | None, **changes: Any) -> SignedDocument:
    prev = GENESIS_REPORT_SHA256 if previous is None else previous.digest()
    return sign_message(report(seq, prev, **changes), signer=INSTANCE_KEY)
