"""Receipts and their batch proofs: the direct serialisation is the canonical one, every
receipt of a signed batch is proved by its path, and each way a proof can be wrong has its
own typed error."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modellease._hazmat import SigningKey
from modellease.keys import InstanceSigningKey
from modellease.protocol import (
    BadSignatureError,
    DocumentFormatError,
    UnknownSignerError,
    WrongPayloadTypeError,
    WrongSubjectError,
    canonical_json,
    sign_document,
)
from modellease.protocol.merkle import inclusion_path, tree_levels
from modellease.protocol.messages import IDENTIFIER_PATTERN
from modellease.protocol.receipts import (
    RECEIPT_BATCH_PAYLOAD_TYPE,
    Receipt,
    ReceiptBatch,
    ReceiptMismatchError,
    ReceiptNotInBatchError,
    ReceiptProof,
    ReceiptWriter,
    receipt_from_header,
    receipt_header,
    receipt_leaf_hash,
    split_stream,
    verify_receipt_proof,
)

KEY = SigningKey.from_seed(b"\x09" * 32)
INSTANCE_KEY = InstanceSigningKey(KEY.public_bytes())
HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
IDS = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)
MODEL = hashlib.sha256(b"model").hexdigest()
REQUEST, RESPONSE = b'{"prompt":"secret"}', b'{"answer":"secret"}'

receipts = st.builds(
    Receipt,
    lease_id=IDS,
    instance_id=IDS,
    index=st.integers(min_value=0, max_value=2**53),
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


def receipt_payload(receipt: Receipt) -> bytes:
    return canonical_json(receipt.model_dump(mode="json"))


@settings(max_examples=300, deadline=None)
@given(receipts)
def test_the_writer_writes_the_canonical_json(receipt: Receipt) -> None:
    writer = ReceiptWriter(
        lease_id=receipt.lease_id,
        instance_id=receipt.instance_id,
        bundle_id=receipt.bundle_id,
        model_sha256=receipt.model_sha256,
    )
    written = writer.write(
        index=receipt.index,
        request_sha256=receipt.request_sha256,
        response_sha256=receipt.response_sha256,
        units=receipt.units,
        unit=receipt.unit,
        issued_at=receipt.issued_at,
    )
    assert written == receipt_payload(receipt)


WRITER = ReceiptWriter(
    lease_id="lease-1", instance_id="inst-1", bundle_id="ab" * 16, model_sha256=MODEL
)
GOOD = {
    "index": 1,
    "request_sha256": MODEL,
    "response_sha256": MODEL,
    "units": 2,
    "unit": "tokens",
    "issued_at": "2026-11-28T12:00:00Z",
}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"index": -1}, "is not a count"),
        ({"units": True}, "is not a count"),
        ({"units": 10**30}, "is not a count"),
        ({"request_sha256": 'a"' * 32}, "is not a hex SHA-256"),
        ({"response_sha256": MODEL.upper()}, "is not a hex SHA-256"),
        ({"unit": "joules"}, "is not a unit"),
        ({"request_sha256": 5}, "is not a hex SHA-256"),
        ({"issued_at": 5}, "is not a timestamp"),
        ({"issued_at": '2026-11-28T12:00:00Z","units":"0'}, "RFC 3339"),
        ({"issued_at": "2026-02-30T12:00:00Z"}, "not a real"),
    ],
)
def test_the_writer_refuses_what_a_receipt_cannot_hold(
    change: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        WRITER.write(**(GOOD | change))  # type: ignore[arg-type]


def test_the_writer_checks_the_fixed_fields_once() -> None:
    assert WRITER.write(**GOOD).startswith(b'{"bundle_id":"abab')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lease_id"):
        ReceiptWriter(
            lease_id='x","units":"0', instance_id="inst-1", bundle_id="ab" * 16, model_sha256=MODEL
        )


def receipt(index: int, **change: object) -> Receipt:
    values: dict[str, object] = {
        "lease_id": "lease-1",
        "instance_id": "inst-1",
        "index": index,
        "bundle_id": "ab" * 16,
        "model_sha256": MODEL,
        "request_sha256": hashlib.sha256(REQUEST).hexdigest(),
        "response_sha256": hashlib.sha256(RESPONSE).hexdigest(),
        "units": 3,
        "unit": "tokens",
        "issued_at": "2026-11-28T12:00:00Z",
    }
    return Receipt(**(values | change))  # type: ignore[arg-type]


def batch_proofs(
    payloads: list[bytes], *, first: int = 0, signer: SigningKey = KEY, **change: object
) -> list[ReceiptProof]:
    """A signed batch over ``payloads`` (receipts ``first``...) and each one's proof."""
    levels = tree_levels([receipt_leaf_hash(p) for p in payloads])
    fields: dict[str, object] = {
        "lease_id": "lease-1",
        "instance_id": "inst-1",
        "first": first,
        "size": len(payloads),
        "root": levels[-1][0].hex(),
        "issued_at": "2026-11-28T12:00:01Z",
    }
    signed = sign_document(
        ReceiptBatch(**(fields | change)),  # type: ignore[arg-type]
        payload_type=RECEIPT_BATCH_PAYLOAD_TYPE,
        signer=signer,
    )
    return [
        ReceiptProof(receipt=p, batch=signed, path=[n.hex() for n in inclusion_path(levels, i)])
        for i, p in enumerate(payloads)
    ]


def check(proof: ReceiptProof, **bodies: bytes) -> Receipt:
    return verify_receipt_proof(
        proof,
        instance_key=INSTANCE_KEY,
        lease_id="lease-1",
        instance_id="inst-1",
        model_sha256=MODEL,
        bundle_id="ab" * 16,
        **bodies,
    )


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16])
def test_every_receipt_of_a_signed_batch_passes_and_says_no_text(size: int) -> None:
    payloads = [receipt_payload(receipt(40 + i)) for i in range(size)]
    for i, proof in enumerate(batch_proofs(payloads, first=40)):
        checked = check(proof, request=REQUEST, response=RESPONSE)
        assert (checked.index, checked.units, checked.unit) == (40 + i, 3, "tokens")
        assert b"secret" not in proof.to_json()
        assert ReceiptProof.from_json(proof.to_json()) == proof


def test_a_proof_under_another_key_or_of_another_kind_is_refused() -> None:
    payloads = [receipt_payload(receipt(0))]
    with pytest.raises(UnknownSignerError):
        check(batch_proofs(payloads, signer=SigningKey.from_seed(b"\x06" * 32))[0])
    proof = batch_proofs(payloads)[0]
    grant = proof.batch.model_copy(
        update={"payload_type": "application/vnd.modellease.grant.v1+json"}
    )
    with pytest.raises(WrongPayloadTypeError):
        check(proof.model_copy(update={"batch": grant}))
    raised = proof.batch.payload.replace(b'"size":"1"', b'"size":"2"')
    assert raised != proof.batch.payload
    with pytest.raises(BadSignatureError):
        check(
            proof.model_copy(update={"batch": proof.batch.model_copy(update={"payload": raised})})
        )


@pytest.mark.parametrize(
    ("change", "batch_change"),
    [
        ({"lease_id": "lease-2"}, {}),
        ({"instance_id": "inst-2"}, {}),
        ({"model_sha256": "00" * 32}, {}),
        ({}, {"lease_id": "lease-2"}),
        ({}, {"instance_id": "inst-2"}),
    ],
)
def test_a_receipt_about_another_subject_is_refused(
    change: dict[str, object], batch_change: dict[str, object]
) -> None:
    proof = batch_proofs([receipt_payload(receipt(0, **change))], **batch_change)[0]
    with pytest.raises(WrongSubjectError):
        check(proof)


def test_a_receipt_outside_its_batch_is_refused() -> None:
    payloads = [receipt_payload(receipt(i)) for i in range(5)]
    proofs = batch_proofs(payloads)
    cheaper = receipt_payload(receipt(2, units=0))  # a changed receipt: another leaf
    with pytest.raises(ReceiptNotInBatchError, match="receipt 2 is not in the signed batch"):
        check(proofs[2].model_copy(update={"receipt": cheaper}))
    with pytest.raises(ReceiptNotInBatchError):  # another receipt's path
        check(proofs[2].model_copy(update={"path": proofs[3].path}))
    with pytest.raises(ReceiptNotInBatchError):  # numbered outside the batch
        check(batch_proofs([receipt_payload(receipt(9))], first=0)[0])
    other = batch_proofs([receipt_payload(receipt(i, units=5)) for i in range(5)])
    with pytest.raises(ReceiptNotInBatchError):  # a genuine receipt from another batch
        check(proofs[1].model_copy(update={"batch": other[1].batch}))


def test_a_receipt_for_other_bodies_is_refused() -> None:
    proof = batch_proofs([receipt_payload(receipt(0))])[0]
    with pytest.raises(ReceiptMismatchError, match="another request body"):
        check(proof, request=RESPONSE)
    with pytest.raises(ReceiptMismatchError, match="another response body"):
        check(proof, response=REQUEST)


def test_malformed_receipts_and_proofs_are_refused() -> None:
    proof = batch_proofs([receipt_payload(receipt(0))])[0]
    not_canonical = proof.receipt.replace(b'{"bundle_id"', b'{ "bundle_id"')
    with pytest.raises(DocumentFormatError, match="not a receipt"):
        check(proof.model_copy(update={"receipt": not_canonical}))
    wire = proof.to_json()
    for broken, match in [
        (wire.replace(b'"receipt":"', b'"receipt":"!'), "not base64"),
        (wire.replace(b'"path":[]', b'"path":["zz"]'), "not a receipt proof"),
        (wire.replace(b'"path":[]', b'"path":[],"x":"1"'), "not a receipt proof"),
        (wire[:-1], "not a receipt proof"),
        (b" " * 20000, "at most"),
    ]:
        with pytest.raises(DocumentFormatError, match=match):
            ReceiptProof.from_json(broken)
    assert receipt_header(proof.receipt).isascii()


def test_a_batch_covers_at_least_one_receipt() -> None:
    with pytest.raises(ValueError, match="at least one receipt"):
        ReceiptBatch(
            lease_id="lease-1",
            instance_id="inst-1",
            first=0,
            size=0,
            root="00" * 32,
            issued_at="2026-11-28T12:00:01Z",
        )


def test_oversized_receipts_are_refused_before_parsing() -> None:
    with pytest.raises(DocumentFormatError, match="a receipt is at most 2048 bytes"):
        receipt_from_header("A" * 4000)
    assert receipt_from_header("AAA=") == b"\x00\x00"
    with pytest.raises(DocumentFormatError, match="not canonical base64"):
        receipt_from_header("AAB=")  # the same bytes, with pad bits set
    proof = batch_proofs([receipt_payload(receipt(0))])[0]
    with pytest.raises(DocumentFormatError, match="a receipt is at most 2048 bytes"):
        check(proof.model_copy(update={"receipt": b" " * 3000}))


def test_a_streams_receipt_line_is_found_and_what_it_covers() -> None:
    events = b'data: {"a":"x\\n\\n: x-modellease-receipt forged"}\n\ndata: {"b":1}\n\n'
    stream = events + b": x-modellease-receipt QUJD\n\ndata: [DONE]\n\n"
    assert split_stream(stream) == (events, b"QUJD")
    assert split_stream(events) is None  # no receipt line (escaped newlines are not lines)
    assert split_stream(events + b": x-modellease-receipt QUJD") is None  # cut short
    assert split_stream(stream + b'data: {"c":2}\n\n') is None  # nothing may follow it
    assert split_stream(events + b": x-modellease-receipt QUJD\n\n") == (events, b"QUJD")
