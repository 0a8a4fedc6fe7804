"""Receipts checked offline: each way a receipt can be wrong has its own typed error."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from modellease._hazmat import SigningKey
from modellease.client import MissingReceiptError, ReceiptSubject, check_receipt, parse_receipt
from modellease.client.receipts import check_response
from modellease.keys import InstanceSigningKey
from modellease.protocol import (
    BadSignatureError,
    DocumentFormatError,
    UnknownSignerError,
    WrongPayloadTypeError,
    WrongSubjectError,
)
from modellease.protocol.receipts import Receipt, ReceiptMismatchError, sign_receipt
from modellease.protocol.signed import SignedDocument, sign_document

KEY = SigningKey.from_seed(b"\x05" * 32)
MODEL = hashlib.sha256(b"model").hexdigest()
REQUEST, RESPONSE = b'{"prompt":"secret"}', b'{"answer":"secret"}'
SUBJECT = ReceiptSubject(InstanceSigningKey(KEY.public_bytes()), "lease-1", "inst-1", MODEL)


def receipt(**change: object) -> Receipt:
    values: dict[str, object] = {
        "lease_id": "lease-1",
        "instance_id": "inst-1",
        "bundle_id": "ab" * 16,
        "model_sha256": MODEL,
        "request_sha256": hashlib.sha256(REQUEST).hexdigest(),
        "response_sha256": hashlib.sha256(RESPONSE).hexdigest(),
        "units": 3,
        "unit": "tokens",
        "issued_at": "2026-11-28T12:00:00Z",
    }
    return Receipt(**(values | change))  # type: ignore[arg-type]


def test_a_genuine_receipt_passes_and_says_no_text() -> None:
    signed = sign_receipt(receipt(), signer=KEY)
    checked = check_receipt(SUBJECT, signed, request=REQUEST, response=RESPONSE)
    assert (checked.units, checked.unit) == (3, "tokens")
    assert b"secret" not in signed.payload


@pytest.mark.parametrize(
    ("signed", "error"),
    [
        (sign_receipt(receipt(), signer=SigningKey.from_seed(b"\x06" * 32)), UnknownSignerError),
        (sign_receipt(receipt(lease_id="lease-2"), signer=KEY), WrongSubjectError),
        (sign_receipt(receipt(instance_id="inst-2"), signer=KEY), WrongSubjectError),
        (sign_receipt(receipt(model_sha256="00" * 32), signer=KEY), WrongSubjectError),
        (sign_receipt(receipt(request_sha256="00" * 32), signer=KEY), ReceiptMismatchError),
        (sign_receipt(receipt(response_sha256="00" * 32), signer=KEY), ReceiptMismatchError),
        (
            sign_document(
                receipt(), payload_type="application/vnd.modellease.grant.v1+json", signer=KEY
            ),
            WrongPayloadTypeError,
        ),
    ],
)
def test_a_wrong_receipt_is_refused(signed: SignedDocument, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_receipt(SUBJECT, signed, request=REQUEST, response=RESPONSE)


def test_a_tampered_receipt_is_refused() -> None:
    signed = sign_receipt(receipt(), signer=KEY)
    forged = signed.model_copy(update={"payload": signed.payload.replace(b'"3"', b'"1"')})
    with pytest.raises(BadSignatureError):
        check_receipt(SUBJECT, forged)


def test_the_header_form_round_trips_and_garbage_is_refused() -> None:
    signed = sign_receipt(receipt(), signer=KEY)
    assert parse_receipt(base64.b64encode(signed.to_json())) == signed
    with pytest.raises(DocumentFormatError, match="not base64"):
        parse_receipt("not base64!")
    with pytest.raises(DocumentFormatError):
        parse_receipt(base64.b64encode(b"{}"))


def test_an_answer_without_a_receipt_is_refused() -> None:
    answer = httpx.Response(200, content=RESPONSE, request=httpx.Request("POST", "https://n"))
    with pytest.raises(MissingReceiptError):
        check_response(None, answer)  # type: ignore[arg-type]


def test_a_node_description_is_read_or_refused() -> None:
    summary = {
        "signing_public_key": KEY.public_bytes().hex(),
        "lease_id": "lease-1",
        "instance_id": "inst-1",
        "model": {"sha256": MODEL},
    }
    assert ReceiptSubject.from_summary({"verified": True, "node": summary}) == SUBJECT
    with pytest.raises(ValueError, match="not a verified node description"):
        ReceiptSubject.from_summary({"lease_id": "lease-1"})
