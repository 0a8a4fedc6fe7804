"""The bundle manifest: what model a bundle holds, who sealed it, and how it is framed.

Rules:

* the manifest is RFC 8785 canonical JSON signed with Ed25519 over
  ``PAE(MANIFEST_PAYLOAD_TYPE, manifest)``;
* :func:`verify_manifest` checks the signature against the caller's trusted custodian
  keys *before* parsing a single field, then requires canonical form, the schema, and that
  the key named inside is the one that verified; anything else is the opaque
  :class:`~modellease.errors.BundleIntegrityError`;
* :func:`read_unverified_manifest` exists for ``inspect`` only and says so in its name.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from modellease._hazmat import SigningKey, ed25519_verify
from modellease.bundle.format import (
    MANIFEST_PAYLOAD_TYPE,
    MAX_FRAME_COUNT,
    MAX_FRAME_SIZE,
    MAX_MANIFEST_SIZE,
    MAX_MODEL_SIZE,
    MIN_FRAME_SIZE,
    BundleVersion,
    frame_count,
)
from modellease.errors import BundleIntegrityError
from modellease.keys import CustodianPublicKey, fingerprint
from modellease.protocol import canonical_json, pae, parse_canonical_json

FORMAT_VERSION: Final = 1
CIPHER: Final = "aes-256-gcm-stream-v1"
ModelFormat = Literal["onnx", "gguf", "safetensors"]
MODEL_FORMATS: tuple[ModelFormat, ...] = ("onnx", "gguf", "safetensors")

_HEX64 = r"^[0-9a-f]{64}$"
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)


class ModelInfo(BaseModel):
    """The sealed model: its name, version, format, and identity (size and SHA-256)."""

    model_config = _STRICT

    name: str = Field(min_length=1, max_length=256)
    version: str = Field(min_length=1, max_length=128)
    format: ModelFormat
    size: int = Field(ge=1, le=MAX_MODEL_SIZE)
    sha256: str = Field(pattern=_HEX64)


class CustodianRef(BaseModel):
    """The custodian key that signed the manifest, and its fingerprint."""

    model_config = _STRICT

    public_key: str = Field(pattern=_HEX64)
    fingerprint: str

    @model_validator(mode="after")
    def _fingerprint_matches(self) -> Self:
        if self.fingerprint != fingerprint(bytes.fromhex(self.public_key)):
            raise ValueError("custodian fingerprint does not match the public key")
        return self


class Manifest(BaseModel):
    """The signed description of a sealed bundle."""

    model_config = _STRICT

    format_version: Literal[1]
    bundle_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    cipher: Literal["aes-256-gcm-stream-v1"]
    frame_size: int = Field(ge=MIN_FRAME_SIZE, le=MAX_FRAME_SIZE)
    created_at: str
    custodian: CustodianRef
    model: ModelInfo
    provenance: dict[str, JsonValue]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if _TIMESTAMP.fullmatch(self.created_at) is None:
            raise ValueError("created_at must be an RFC 3339 UTC time to the second")
        datetime.strptime(self.created_at, _TIMESTAMP_FORMAT)  # a real date: raises ValueError
        if frame_count(self.model.size, self.frame_size) > MAX_FRAME_COUNT:
            raise ValueError("too many frames")
        return self

    @property
    def created(self) -> datetime:
        return datetime.strptime(self.created_at, _TIMESTAMP_FORMAT).replace(tzinfo=UTC)

    def to_canonical_json(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))


def format_timestamp(when: datetime) -> str:
    """Render an aware datetime as the manifest's RFC 3339 UTC form."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)


@dataclass(frozen=True, slots=True)
class SignedManifest:
    """Canonical manifest bytes and their Ed25519 signature, as stored in a bundle."""

    raw: bytes
    signature: bytes


def sign_manifest(manifest: Manifest, signer: SigningKey) -> SignedManifest:
    """Serialise canonically and sign. The signer must be the custodian named inside."""
    if manifest.custodian.public_key != signer.public_bytes().hex():
        raise ValueError("the manifest names a different custodian key than the signer")
    raw = manifest.to_canonical_json()
    if len(raw) > MAX_MANIFEST_SIZE:
        raise ValueError(f"manifest is {len(raw)} bytes; the limit is {MAX_MANIFEST_SIZE}")
    return SignedManifest(raw=raw, signature=signer.sign(pae(MANIFEST_PAYLOAD_TYPE, raw)))


def verify_manifest(
    signed: SignedManifest,
    *,
    trusted_custodians: Collection[CustodianPublicKey],
    header_version: BundleVersion,
) -> Manifest:
    """Return the manifest only if a trusted custodian key signed exactly these bytes."""
    if not trusted_custodians:
        raise ValueError("no trusted custodian keys given: refusing to verify against nothing")
    message = pae(MANIFEST_PAYLOAD_TYPE, signed.raw)
    # 1. Signature first: no field is read before it verifies (STYLE 6).
    signers = [k for k in trusted_custodians if ed25519_verify(k, signed.signature, message)]
    if not signers:
        raise BundleIntegrityError
    # 2. Canonical form and schema: the signed bytes have exactly one reading.
    try:
        manifest = Manifest.model_validate(parse_canonical_json(signed.raw))
    except (ValueError, ValidationError):
        raise BundleIntegrityError from None
    # 3. The key named inside is the key that signed, and the versions agree.
    if manifest.custodian.public_key != signers[0].hex():
        raise BundleIntegrityError
    if manifest.format_version != header_version:
        raise BundleIntegrityError
    return manifest


def read_unverified_manifest(raw: bytes) -> Manifest | None:
    """Parse manifest bytes WITHOUT checking any signature (for ``inspect`` only).

    Returns ``None`` if the bytes are not a well-formed canonical manifest.
    """
    try:
        return Manifest.model_validate(parse_canonical_json(raw))
    except (ValueError, ValidationError):
        return None
