"""The one binding rule for every TEE: report data = hash of the instance's claims.

Rules:

* the claims are RFC 8785 canonical JSON holding the verifier's nonce and the instance's
  public keys (KEM key for key release, signing key for telemetry, later the TLS key);
* ``report_data = SHA-512("modellease/attestation/v1/report-data" || 0x00 || claims)``:
  64 bytes, exactly the size of SGX, TDX and SEV-SNP report data, domain-separated so
  the value can never be mistaken for another protocol's;
* the verifier recomputes it from the *received* claims bytes and compares all 64 bytes
  in constant time; no prefix match is ever accepted;
* the claims are parsed strictly (step 2 of the appraisal) but believed only once the
  vendor signature and this comparison (steps 4 and 8) have both succeeded.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modellease._hazmat import ct_equal
from modellease.attestation.evidence import TeeKind, TeeName
from modellease.errors import EvidenceFormatError
from modellease.keys import InstanceKemKey, InstanceSigningKey, Nonce
from modellease.protocol import canonical_json, parse_canonical_json

REPORT_DATA_DOMAIN = b"modellease/attestation/v1/report-data\x00"
REPORT_DATA_SIZE = 64
NONCE_SIZE = 32
CLAIMS_PROFILE: Final = "modellease/instance-claims/v1"

_HEX32 = r"^[0-9a-f]{64}$"


class InstanceClaims(BaseModel):
    """What an instance asserts about itself; true only once its report data matches."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    profile: Literal["modellease/instance-claims/v1"]
    tee: TeeName
    nonce: str = Field(pattern=_HEX32)
    kem_public_key: str = Field(pattern=_HEX32)
    signing_public_key: str = Field(pattern=_HEX32)
    tls_public_key_sha256: str | None = Field(default=None, pattern=_HEX32)

    @model_validator(mode="after")
    def _distinct_keys(self) -> Self:
        if self.kem_public_key == self.signing_public_key:
            raise ValueError("the KEM key and the signing key must differ")
        return self

    @classmethod
    def new(
        cls,
        *,
        tee: TeeKind,
        nonce: Nonce,
        kem_public_key: InstanceKemKey,
        signing_public_key: InstanceSigningKey,
        tls_public_key_sha256: bytes | None = None,
    ) -> InstanceClaims:
        if len(nonce) != NONCE_SIZE:
            raise ValueError("a nonce is 32 bytes")
        return cls(
            profile=CLAIMS_PROFILE,
            tee=tee.value,
            nonce=nonce.hex(),
            kem_public_key=kem_public_key.hex(),
            signing_public_key=signing_public_key.hex(),
            tls_public_key_sha256=tls_public_key_sha256.hex() if tls_public_key_sha256 else None,
        )

    def to_bytes(self) -> bytes:
        """Canonical JSON; ``None`` fields are left out."""
        return canonical_json(self.model_dump(mode="json", exclude_none=True))

    @property
    def nonce_bytes(self) -> Nonce:
        return Nonce(bytes.fromhex(self.nonce))

    @property
    def kem_key(self) -> InstanceKemKey:
        return InstanceKemKey(bytes.fromhex(self.kem_public_key))

    @property
    def signing_key(self) -> InstanceSigningKey:
        return InstanceSigningKey(bytes.fromhex(self.signing_public_key))


def report_data_for(claims: bytes) -> bytes:
    """The 64-byte report data that binds ``claims`` (the exact bytes sent)."""
    return hashlib.sha512(REPORT_DATA_DOMAIN + claims).digest()


def binds(report_data: bytes, claims: bytes) -> bool:
    """Whether ``report_data`` is exactly the binding of ``claims`` (constant time)."""
    return len(report_data) == REPORT_DATA_SIZE and ct_equal(report_data, report_data_for(claims))


def parse_claims(raw: bytes) -> InstanceClaims:
    """Parse claims bytes, which must be canonical JSON of the v1 profile."""
    try:
        return InstanceClaims.model_validate(parse_canonical_json(raw))
    except (ValueError, ValidationError) as exc:
        raise EvidenceFormatError(
            f"claims are not a valid v1 claims document: {_short(exc)}"
        ) from None


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc)
