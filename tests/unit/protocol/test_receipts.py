"""Receipts are signed on a fast path (no generic parse-back check): generated receipts
prove the direct serialisation is the canonical one and that every signed receipt verifies
back to itself."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from modellease._hazmat import SigningKey
from modellease.keys import InstanceSigningKey
from modellease.protocol import canonical_json
from modellease.protocol.messages import IDENTIFIER_PATTERN
from modellease.protocol.receipts import Receipt, receipt_payload, sign_receipt, verify_receipt

KEY = SigningKey.from_seed(b"\x09" * 32)
HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
IDS = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)

receipts = st.builds(
    Receipt,
    lease_id=IDS,
    instance_id=IDS,
    bundle_id=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    model_sha256=HEX64,
    request_sha256=HEX64,
    response_sha256=HEX64,
    units=st.integers(min_value=0, max_value=2**63 - 1),
    unit=st.sampled_from(["requests", "tokens", "flops"]),
    issued_at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
    ),
)


@settings(max_examples=200, deadline=None)
@given(receipts)
def test_the_direct_payload_is_canonical_and_verifies_back(receipt: Receipt) -> None:
    assert receipt_payload(receipt) == canonical_json(receipt.model_dump(mode="json"))
    signed = sign_receipt(receipt, signer=KEY)
    assert signed.model_validate(signed.model_dump()) == signed  # a valid envelope
    back = verify_receipt(
        signed,
        instance_key=InstanceSigningKey(KEY.public_bytes()),
        lease_id=receipt.lease_id,
        instance_id=receipt.instance_id,
        model_sha256=receipt.model_sha256,
    )
    assert back == receipt
