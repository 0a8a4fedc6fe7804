"""Signed documents: canonical JSON payloads with one Ed25519 signature over their PAE.

Rules:

* a :class:`SignedDocument` carries the payload (RFC 8785 canonical JSON bytes), its payload
  type, one Ed25519 signature over ``PAE(payload_type, payload)`` and a key id, the
  ``sha256:<hex>`` fingerprint of the signer's raw public key (:func:`modellease.keys.fingerprint`);
* every kind of document has its own payload type (``application/vnd.modellease.<kind>.v1+json``);
  the type is inside the signed PAE bytes, so a signature over one kind never verifies as
  another, whatever the envelope claims;
* :func:`verify_document` checks, in this order, each with its own error:

  1. the envelope names the expected payload type ........... :class:`WrongPayloadTypeError`
  2. the key id names one of the caller's trusted keys ....... :class:`UnknownSignerError`
  3. that key's signature verifies over ``PAE(expected type, payload)``
     ............................................................ :class:`BadSignatureError`

  and :func:`open_document` only then parses the payload: canonical JSON, then the strict
  schema (:class:`DocumentFormatError`); nothing is read from a payload before step 3;
* the key id is not signed: it only selects which trusted key must verify, so changing it
  can only make verification fail;
* an empty set of trusted keys is a caller bug (``ValueError``), never a pass;
* the wire form is the canonical JSON object ``{"key_id", "payload" (base64), "payload_type",
  "signature" (base64)}``; sizes are capped before anything is decoded;
* :func:`sign_document` refuses to sign a document it could not itself verify and parse back
  to the same value, so a signer never emits something every verifier rejects.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Collection
from typing import Annotated, Final, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from modellease._hazmat import (
    ED25519_PUBLIC_KEY_SIZE,
    ED25519_SIGNATURE_SIZE,
    SigningKey,
    ed25519_verify,
)
from modellease.errors import InvalidInputError
from modellease.keys import fingerprint
from modellease.protocol.envelope import canonical_json, pae, parse_canonical_json

MAX_PAYLOAD_SIZE: Final = 64 * 1024  # our largest signed message is a few hundred bytes
MAX_PAYLOAD_TYPE_LENGTH: Final = 128
MAX_SIGNED_DOCUMENT_JSON_SIZE: Final = 2 * MAX_PAYLOAD_SIZE  # base64 (4/3) plus the fields
PAYLOAD_TYPE_PATTERN: Final = r"^application/vnd\.modellease\.[a-z0-9-]{1,64}\.v[0-9]{1,4}\+json$"
KEY_ID_PATTERN: Final = r"^sha256:[0-9a-f]{64}$"
_PAYLOAD_TYPE = re.compile(PAYLOAD_TYPE_PATTERN)

M = TypeVar("M", bound=BaseModel)


# --------------------------------------------------------------------------- errors
# Subclasses of modellease.errors.InvalidInputError; to be moved into errors.py.
class SignedDocumentError(InvalidInputError):
    """A signed document was refused: wrong kind, unknown signer, bad signature, malformed."""

    reason = "signed_document"


class WrongPayloadTypeError(SignedDocumentError):
    """The document is of another kind than the one expected (a report offered as a grant)."""

    reason = "wrong_payload_type"


class UnknownSignerError(SignedDocumentError):
    """The key id does not name any key trusted for this kind of document."""

    reason = "unknown_signer"


class BadSignatureError(SignedDocumentError):
    """The signature does not verify under the trusted key the key id names."""

    reason = "bad_signature"


class DocumentFormatError(SignedDocumentError):
    """The envelope, or a payload whose signature verified, is not well formed."""

    reason = "document_malformed"


# --------------------------------------------------------------------------- base64 fields
def base64_validator(max_bytes: int) -> PlainValidator:
    """Validate a ``bytes`` field carried on the wire as canonical, padded, standard base64.

    Python code passes ``bytes``. The wire carries a string, refused before decoding if it is
    longer than ``max_bytes`` could need, and refused unless it is the one canonical base64
    spelling of its bytes (no whitespace, no URL-safe alphabet, zero pad bits).
    """
    max_chars = 4 * -(-max_bytes // 3)

    def validate(value: object) -> bytes:
        if isinstance(value, bytes):
            raw = value
        elif isinstance(value, str):
            if len(value) > max_chars:
                raise ValueError(f"longer than {max_bytes} bytes")
            try:
                raw = base64.b64decode(value.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError):
                raise ValueError("not base64") from None
            if base64.b64encode(raw).decode("ascii") != value:
                raise ValueError("not canonical base64")
        else:
            raise ValueError("must be a base64 string")  # noqa: TRY004 - pydantic wants ValueError
        if len(raw) > max_bytes:
            raise ValueError(f"longer than {max_bytes} bytes")
        return raw

    return PlainValidator(validate)


def base64_schema(max_bytes: int) -> WithJsonSchema:
    """The JSON schema of a :func:`base64_validator` field (for OpenAPI)."""
    max_chars = 4 * -(-max_bytes // 3)
    return WithJsonSchema({"type": "string", "contentEncoding": "base64", "maxLength": max_chars})


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


BASE64_SERIALIZER: Final = PlainSerializer(_b64encode, return_type=str, when_used="json")

PayloadBytes = Annotated[
    bytes,
    base64_validator(MAX_PAYLOAD_SIZE),
    BASE64_SERIALIZER,
    base64_schema(MAX_PAYLOAD_SIZE),
]
SignatureBytes = Annotated[
    bytes,
    base64_validator(ED25519_SIGNATURE_SIZE),
    BASE64_SERIALIZER,
    base64_schema(ED25519_SIGNATURE_SIZE),
]


# --------------------------------------------------------------------------- the document
class SignedDocument(BaseModel):
    """Canonical payload bytes, their payload type, one signature and the signer's key id."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    payload_type: str = Field(max_length=MAX_PAYLOAD_TYPE_LENGTH, pattern=PAYLOAD_TYPE_PATTERN)
    payload: PayloadBytes
    signature: SignatureBytes
    key_id: str = Field(pattern=KEY_ID_PATTERN)

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        if len(self.signature) != ED25519_SIGNATURE_SIZE:
            raise ValueError("an Ed25519 signature is 64 bytes")
        if not self.payload:
            raise ValueError("empty payload")
        return self

    def pae_bytes(self) -> bytes:
        """The exact bytes the signature covers."""
        return pae(self.payload_type, self.payload)

    def digest(self) -> str:
        """Hex SHA-256 of :meth:`pae_bytes`: names this document in hash chains and logs."""
        return hashlib.sha256(self.pae_bytes()).hexdigest()

    def to_json(self) -> bytes:
        """The canonical wire form."""
        return canonical_json(
            {
                "key_id": self.key_id,
                "payload": _b64encode(self.payload),
                "payload_type": self.payload_type,
                "signature": _b64encode(self.signature),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> SignedDocument:
        """Parse the wire form (signature NOT checked); any deviation is a format error."""
        if len(raw) > MAX_SIGNED_DOCUMENT_JSON_SIZE:
            raise DocumentFormatError(
                f"signed document larger than {MAX_SIGNED_DOCUMENT_JSON_SIZE} bytes"
            )
        try:
            return cls.model_validate(parse_canonical_json(raw))
        except (ValueError, ValidationError) as exc:
            raise DocumentFormatError(f"not a signed document: {_short(exc)}") from None


# --------------------------------------------------------------------------- sign / verify
def _check_payload_type(payload_type: str) -> None:
    if _PAYLOAD_TYPE.fullmatch(payload_type) is None:
        raise ValueError(f"{payload_type!r} is not a modellease payload type")


def sign_document(doc_model: BaseModel, *, payload_type: str, signer: SigningKey) -> SignedDocument:
    """Serialise ``doc_model`` canonically and sign its PAE under ``payload_type``.

    Raises ``ValueError`` if the payload type is malformed, the payload is too large, or the
    bytes would not parse back into an equal document (so no verifier could accept them).
    """
    _check_payload_type(payload_type)
    payload = canonical_json(doc_model.model_dump(mode="json"))
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise ValueError(f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_SIZE}")
    try:
        again = type(doc_model).model_validate(parse_canonical_json(payload))
    except ValidationError as exc:
        raise ValueError(f"the document would not parse back: {_short(exc)}") from None
    if again != doc_model:
        raise ValueError("the document does not survive its own canonical form")
    return SignedDocument(
        payload_type=payload_type,
        payload=payload,
        signature=signer.sign(pae(payload_type, payload)),
        key_id=fingerprint(signer.public_bytes()),
    )


def verify_document(
    signed: SignedDocument, *, payload_type: str, trusted_keys: Collection[bytes]
) -> bytes:
    """Return the payload bytes only if a trusted key signed them as ``payload_type``.

    ``trusted_keys`` are raw 32-byte Ed25519 public keys. See the module docstring for the
    order of checks and their errors.
    """
    _check_payload_type(payload_type)
    if not trusted_keys:
        raise ValueError("no trusted keys given: refusing to verify against nothing")
    by_id: dict[str, bytes] = {}
    for key in trusted_keys:
        if len(key) != ED25519_PUBLIC_KEY_SIZE:
            raise ValueError("a trusted key is a raw 32-byte Ed25519 public key")
        by_id[fingerprint(key)] = bytes(key)
    # 1. The kind: a label check for a clear error; the PAE below enforces it anyway.
    if signed.payload_type != payload_type:
        raise WrongPayloadTypeError(
            f"expected a document of type {payload_type}, got one of type {signed.payload_type}"
        )
    # 2. The signer must be one the caller trusts for this kind.
    signer_key = by_id.get(signed.key_id)
    if signer_key is None:
        raise UnknownSignerError(f"{signed.key_id} is not a key trusted to sign {payload_type}")
    # 3. The signature, over the expected type and the received bytes.
    if not ed25519_verify(signer_key, signed.signature, pae(payload_type, signed.payload)):
        raise BadSignatureError(f"the signature by {signed.key_id} does not verify")
    return signed.payload


def _parse_payload(payload: bytes, model: type[M]) -> M:
    """Parse payload bytes that :func:`verify_document` returned into ``model``."""
    try:
        return model.model_validate(parse_canonical_json(payload))
    except (ValueError, ValidationError) as exc:
        raise DocumentFormatError(
            f"signed payload is not a valid {model.__name__}: {_short(exc)}"
        ) from None


def open_document(
    signed: SignedDocument,
    *,
    model: type[M],
    payload_type: str,
    trusted_keys: Collection[bytes],
) -> M:
    """:func:`verify_document`, then the typed parse: the verified document or an error."""
    payload = verify_document(signed, payload_type=payload_type, trusted_keys=trusted_keys)
    return _parse_payload(payload, model)


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else str(err["msg"])
    return str(exc)
