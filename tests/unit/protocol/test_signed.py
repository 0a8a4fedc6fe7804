"""The generic signed document: verify the bytes as the expected kind first, then parse."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from modellease._hazmat import SigningKey
from modellease.keys import fingerprint
from modellease.protocol import (
    BadSignatureError,
    DocumentFormatError,
    SignedDocument,
    UnknownSignerError,
    WrongPayloadTypeError,
    canonical_json,
    open_document,
    pae,
    sign_document,
    verify_document,
)
from modellease.protocol.signed import MAX_PAYLOAD_SIZE, MAX_SIGNED_DOCUMENT_JSON_SIZE

NOTE = "application/vnd.modellease.note.v1+json"
MEMO = "application/vnd.modellease.memo.v1+json"
SIGNER = SigningKey.from_seed(b"\x0a" * 32)
STRANGER = SigningKey.from_seed(b"\x0b" * 32)


class Note(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    text: str = Field(max_length=100_000)
    n: int


def signed_note(**changes: Any) -> SignedDocument:
    fields: dict[str, Any] = {"text": "hello", "n": 1} | changes
    return sign_document(Note(**fields), payload_type=NOTE, signer=SIGNER)


def raw_signed(
    payload: bytes, payload_type: str = NOTE, signer: SigningKey = SIGNER
) -> SignedDocument:
    return SignedDocument(
        payload_type=payload_type,
        payload=payload,
        signature=signer.sign(pae(payload_type, payload)),
        key_id=fingerprint(signer.public_bytes()),
    )


def test_sign_then_open_returns_the_document() -> None:
    signed = signed_note()
    assert signed.payload == b'{"n":1,"text":"hello"}'
    assert signed.key_id == fingerprint(SIGNER.public_bytes())
    assert (
        verify_document(signed, payload_type=NOTE, trusted_keys=[SIGNER.public_bytes()])
        == signed.payload
    )
    note = open_document(
        signed,
        model=Note,
        payload_type=NOTE,
        trusted_keys=[STRANGER.public_bytes(), SIGNER.public_bytes()],
    )
    assert note == Note(text="hello", n=1)


def test_digest_is_sha256_of_the_pae_bytes() -> None:
    signed = signed_note()
    assert signed.pae_bytes() == pae(NOTE, signed.payload)
    assert signed.digest() == hashlib.sha256(pae(NOTE, signed.payload)).hexdigest()


def test_a_document_of_another_kind_is_refused_by_its_label() -> None:
    signed = signed_note()
    with pytest.raises(WrongPayloadTypeError, match=r"expected a document of type .*memo"):
        verify_document(signed, payload_type=MEMO, trusted_keys=[SIGNER.public_bytes()])


def test_relabelling_a_document_breaks_its_signature() -> None:
    relabelled = signed_note().model_copy(update={"payload_type": MEMO})
    with pytest.raises(BadSignatureError):
        verify_document(relabelled, payload_type=MEMO, trusted_keys=[SIGNER.public_bytes()])


def test_an_unknown_signer_is_refused() -> None:
    signed = sign_document(Note(text="x", n=1), payload_type=NOTE, signer=STRANGER)
    with pytest.raises(UnknownSignerError, match="not a key trusted"):
        verify_document(signed, payload_type=NOTE, trusted_keys=[SIGNER.public_bytes()])


def test_claiming_a_trusted_key_id_does_not_help_a_stranger() -> None:
    forged = sign_document(Note(text="x", n=1), payload_type=NOTE, signer=STRANGER).model_copy(
        update={"key_id": fingerprint(SIGNER.public_bytes())}
    )
    with pytest.raises(BadSignatureError):
        verify_document(forged, payload_type=NOTE, trusted_keys=[SIGNER.public_bytes()])


def test_every_flipped_payload_or_signature_byte_is_refused() -> None:
    signed = signed_note()
    for field in ("payload", "signature"):
        value = getattr(signed, field)
        for i in range(len(value)):
            tampered = bytearray(value)
            tampered[i] ^= 0x01
            doc = signed.model_copy(update={field: bytes(tampered)})
            with pytest.raises(BadSignatureError):
                verify_document(doc, payload_type=NOTE, trusted_keys=[SIGNER.public_bytes()])


def test_verifying_against_nothing_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="no trusted keys"):
        verify_document(signed_note(), payload_type=NOTE, trusted_keys=[])
    with pytest.raises(ValueError, match="raw 32-byte"):
        verify_document(signed_note(), payload_type=NOTE, trusted_keys=[b"short"])
    with pytest.raises(ValueError, match="not a modellease payload type"):
        verify_document(
            signed_note(), payload_type="application/json", trusted_keys=[SIGNER.public_bytes()]
        )


@pytest.mark.parametrize(
    "payload",
    [
        b'{"text":"hello","n":1}',  # signed, but not canonical (key order)
        b'{"n":1, "text":"hello"}',  # signed, but not canonical (whitespace)
        b'{"n":1,"n":2,"text":"hello"}',  # duplicate key
        b'{"n":"1","text":"hello"}',  # wrong type under strict parsing
        b'{"extra":0,"n":1,"text":"hello"}',  # unknown field
        b"[1]",  # not an object
        b"\xff",  # not UTF-8
    ],
)
def test_a_signed_but_malformed_payload_is_refused_after_verification(payload: bytes) -> None:
    with pytest.raises(DocumentFormatError, match="not a valid Note"):
        open_document(
            raw_signed(payload), model=Note, payload_type=NOTE, trusted_keys=[SIGNER.public_bytes()]
        )


def test_sign_refuses_a_bad_payload_type_or_an_oversized_document() -> None:
    with pytest.raises(ValueError, match="payload type"):
        sign_document(Note(text="x", n=1), payload_type="text/plain", signer=SIGNER)
    with pytest.raises(ValueError, match="limit"):
        sign_document(Note(text="x" * MAX_PAYLOAD_SIZE, n=1), payload_type=NOTE, signer=SIGNER)


class Stamped(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    value: Annotated[str, AfterValidator(lambda s: s + "!")]


class Dated(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    when: bytes


def test_sign_refuses_a_document_that_would_not_read_back() -> None:
    with pytest.raises(ValueError, match="does not survive"):
        sign_document(Stamped(value="a"), payload_type=NOTE, signer=SIGNER)
    with pytest.raises(ValueError, match="would not parse back"):
        sign_document(Dated(when=b"\x00\x01"), payload_type=NOTE, signer=SIGNER)


# --------------------------------------------------------------------------- wire form
def wire(**changes: Any) -> bytes:
    doc = json.loads(signed_note().to_json()) | changes
    return canonical_json(doc)


def test_wire_form_round_trips() -> None:
    signed = signed_note()
    raw = signed.to_json()
    assert json.loads(raw) == {
        "key_id": signed.key_id,
        "payload": base64.b64encode(signed.payload).decode(),
        "payload_type": NOTE,
        "signature": base64.b64encode(signed.signature).decode(),
    }
    assert SignedDocument.from_json(raw) == signed
    assert SignedDocument.model_validate_json(raw) == signed


GOOD_PAYLOAD = base64.b64encode(b'{"n":1,"text":"hello"}').decode()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"payload": GOOD_PAYLOAD[:-1] + "\n"}, "not base64"),
        ({"payload": "eyJuIjox_Q=="}, "not base64"),  # URL-safe alphabet
        ({"payload": "eQ="}, "not base64"),  # bad padding
        ({"payload": "eR=="}, "not canonical base64"),  # non-zero pad bits
        ({"payload": ""}, "empty payload"),
        ({"payload": 5}, "must be a base64 string"),
        ({"payload": "A" * (4 * -(-MAX_PAYLOAD_SIZE // 3) + 4)}, "longer than"),
        ({"payload": "é"}, "not base64"),
        ({"signature": base64.b64encode(b"s" * 63).decode()}, "64 bytes"),
        ({"signature": base64.b64encode(b"s" * 66).decode()}, "longer than 64 bytes"),
        ({"key_id": "sha256:" + "A" * 64}, "key_id"),
        ({"payload_type": "application/json"}, "payload_type"),
        ({"extra": 1}, "extra"),
    ],
)
def test_malformed_wire_documents_are_refused(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(DocumentFormatError, match=match):
        SignedDocument.from_json(wire(**changes))


def test_non_canonical_or_oversized_wire_documents_are_refused() -> None:
    raw = signed_note().to_json()
    with pytest.raises(DocumentFormatError, match="canonical"):
        SignedDocument.from_json(raw.replace(b",", b", ", 1))
    with pytest.raises(DocumentFormatError, match="larger than"):
        SignedDocument.from_json(b" " * (MAX_SIGNED_DOCUMENT_JSON_SIZE + 1))
    with pytest.raises(DocumentFormatError, match="signed document"):
        SignedDocument.from_json(b"[]")


def test_python_callers_pass_bytes_and_the_base64_length_bound_is_exact() -> None:
    max_payload = base64.b64encode(b"x" * MAX_PAYLOAD_SIZE).decode()
    assert len(SignedDocument.from_json(wire(payload=max_payload)).payload) == MAX_PAYLOAD_SIZE
    with pytest.raises(ValueError, match="longer than"):
        SignedDocument(
            payload_type=NOTE,
            payload=b"x" * (MAX_PAYLOAD_SIZE + 1),
            signature=b"s" * 64,
            key_id=signed_note().key_id,
        )
