"""The TEE-neutral evidence envelope that travels from an instance to a verifier.

Rules:

* ``quote`` is the raw hardware evidence (SGX/TDX DCAP quote, SEV-SNP report, simulated
  token), exactly as long as its own length fields say: no padding;
* ``claims`` are the canonical JSON bytes whose hash is the quote's report data
  (:mod:`modellease.attestation.binding`);
* ``endorsements`` carry what the verifier needs from the attester's side (the SNP
  VCEK/VLEK certificate, optionally DCAP collateral); trust never comes from them alone;
* the wire form is canonical JSON with base64 fields; every size is capped before decoding.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

from modellease.errors import EvidenceFormatError
from modellease.protocol import canonical_json, parse_canonical_json

MAX_QUOTE_SIZE = 64 * 1024  # DCAP quotes are ~5-8 KiB, SNP reports 1184 B
MAX_CLAIMS_SIZE = 16 * 1024  # a handful of keys and a nonce
MAX_ENDORSEMENT_SIZE = 512 * 1024  # certificate chains and DCAP collateral JSON (~20 KiB)
MAX_ENDORSEMENTS = 8
MAX_EVIDENCE_JSON_SIZE = 6 * 1024 * 1024  # all of the above, base64-encoded (4/3 larger)


class TeeKind(StrEnum):
    """The kinds of TEE modellease can appraise."""

    SIMULATED = "simulated"
    SGX = "sgx"
    TDX = "tdx"
    SEV_SNP = "sev-snp"


TeeName = Literal["simulated", "sgx", "tdx", "sev-snp"]
"""A :class:`TeeKind` as it appears in JSON documents (claims, policies)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """Evidence from one TEE instance, unverified until appraised."""

    tee: TeeKind
    quote: bytes
    claims: bytes
    endorsements: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_size("quote", self.quote, MAX_QUOTE_SIZE)
        _check_size("claims", self.claims, MAX_CLAIMS_SIZE)
        if len(self.endorsements) > MAX_ENDORSEMENTS:
            raise EvidenceFormatError(f"more than {MAX_ENDORSEMENTS} endorsements")
        for name, value in self.endorsements.items():
            _check_size(f"endorsement {name!r}", value, MAX_ENDORSEMENT_SIZE)
        object.__setattr__(self, "endorsements", MappingProxyType(dict(self.endorsements)))

    def to_json(self) -> bytes:
        """The canonical wire form."""
        return canonical_json(
            {
                "tee": self.tee.value,
                "quote": _b64(self.quote),
                "claims": _b64(self.claims),
                "endorsements": {k: _b64(v) for k, v in sorted(self.endorsements.items())},
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Evidence:
        """Parse the wire form; any deviation is an :class:`EvidenceFormatError`."""
        if len(raw) > MAX_EVIDENCE_JSON_SIZE:
            raise EvidenceFormatError(
                f"evidence document larger than {MAX_EVIDENCE_JSON_SIZE} bytes"
            )
        try:
            doc = parse_canonical_json(raw)
        except ValueError as exc:
            raise EvidenceFormatError(f"evidence is not canonical JSON: {exc}") from None
        if set(doc) != {"tee", "quote", "claims", "endorsements"}:
            raise EvidenceFormatError("evidence must have exactly tee, quote, claims, endorsements")
        endorsements = doc["endorsements"]
        if not isinstance(endorsements, dict):
            raise EvidenceFormatError("endorsements must be an object")
        try:
            tee = TeeKind(doc["tee"])
        except ValueError:
            raise EvidenceFormatError(f"unknown TEE kind {doc['tee']!r}") from None
        return cls(
            tee=tee,
            quote=_unb64("quote", doc["quote"]),
            claims=_unb64("claims", doc["claims"]),
            endorsements={str(k): _unb64(f"endorsement {k!r}", v) for k, v in endorsements.items()},
        )


def _check_size(what: str, value: bytes, limit: int) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes")
    if len(value) > limit:
        raise EvidenceFormatError(f"{what} is {len(value)} bytes; the limit is {limit}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(what: str, value: Any) -> bytes:  # noqa: ANN401 - untrusted JSON value
    if not isinstance(value, str):
        raise EvidenceFormatError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise EvidenceFormatError(f"{what} is not valid base64") from None
