"""The evidence envelope and the binding rule."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from modellease.attestation import (
    Evidence,
    InstanceClaims,
    TeeKind,
    VerifiedQuote,
    binds,
    parse_claims,
    report_data_for,
)
from modellease.attestation.binding import REPORT_DATA_DOMAIN
from modellease.attestation.evidence import MAX_CLAIMS_SIZE, MAX_ENDORSEMENTS, MAX_QUOTE_SIZE
from modellease.errors import EvidenceFormatError
from modellease.keys import InstanceKemKey, InstanceSigningKey, Nonce
from modellease.protocol import canonical_json
from tests.unit.attestation.support import NONCE, claims_for


def sample() -> Evidence:
    return Evidence(tee=TeeKind.SGX, quote=b"q" * 10, claims=b"{}", endorsements={"vcek": b"c"})


def test_evidence_wire_form_round_trips() -> None:
    ev = sample()
    raw = ev.to_json()
    assert Evidence.from_json(raw) == ev
    doc = json.loads(raw)
    assert doc == {
        "tee": "sgx",
        "quote": base64.b64encode(b"q" * 10).decode(),
        "claims": base64.b64encode(b"{}").decode(),
        "endorsements": {"vcek": "Yw=="},
    }


def test_endorsements_are_read_only() -> None:
    with pytest.raises(TypeError):
        sample().endorsements["x"] = b"y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"not json", "not canonical JSON"),
        (b'{"tee":"sgx"}', "exactly tee, quote, claims, endorsements"),
        (
            b'{"claims":"","endorsements":[],"quote":"","tee":"sgx"}',
            "endorsements must be an object",
        ),
        (b'{"claims":"","endorsements":{},"quote":"","tee":"tpm"}', "unknown TEE kind 'tpm'"),
        (b'{"claims":"","endorsements":{},"quote":1,"tee":"sgx"}', "quote must be a base64 string"),
        (b'{"claims":"","endorsements":{},"quote":"!!","tee":"sgx"}', "quote is not valid base64"),
        (
            '{"claims":"","endorsements":{},"quote":"\u00e9","tee":"sgx"}'.encode(),
            "quote is not valid base64",
        ),
    ],
)
def test_malformed_evidence_is_refused(doc: bytes, message: str) -> None:
    with pytest.raises(EvidenceFormatError, match=message):
        Evidence.from_json(doc)


def test_size_limits_are_enforced_before_use() -> None:
    with pytest.raises(EvidenceFormatError, match="quote is 65537 bytes"):
        Evidence(tee=TeeKind.SGX, quote=b"x" * (MAX_QUOTE_SIZE + 1), claims=b"")
    with pytest.raises(EvidenceFormatError, match="claims is"):
        Evidence(tee=TeeKind.SGX, quote=b"", claims=b"x" * (MAX_CLAIMS_SIZE + 1))
    with pytest.raises(EvidenceFormatError, match="more than 8 endorsements"):
        Evidence(
            tee=TeeKind.SGX,
            quote=b"",
            claims=b"",
            endorsements={str(i): b"" for i in range(MAX_ENDORSEMENTS + 1)},
        )
    with pytest.raises(EvidenceFormatError, match="larger than"):
        Evidence.from_json(b" " * (6 * 1024 * 1024 + 1))
    with pytest.raises(TypeError, match="quote must be bytes"):
        Evidence(tee=TeeKind.SGX, quote="text", claims=b"")  # type: ignore[arg-type]


def test_report_data_is_domain_separated_sha512_of_the_exact_claims() -> None:
    raw = claims_for(TeeKind.TDX).to_bytes()
    assert report_data_for(raw) == hashlib.sha512(REPORT_DATA_DOMAIN + raw).digest()
    assert len(report_data_for(raw)) == 64
    assert binds(report_data_for(raw), raw)
    assert not binds(report_data_for(raw), raw + b" ")
    assert not binds(report_data_for(raw)[:32], raw)  # never a prefix match
    assert not binds(report_data_for(raw)[:32] + bytes(32), raw)


def test_claims_round_trip_and_typed_keys() -> None:
    claims = claims_for(TeeKind.SEV_SNP)
    parsed = parse_claims(claims.to_bytes())
    assert parsed == claims
    assert parsed.nonce_bytes == NONCE
    assert parsed.kem_key == b"\x11" * 32
    assert "tls_public_key_sha256" not in json.loads(claims.to_bytes())
    with_tls = InstanceClaims.new(
        tee=TeeKind.SGX,
        nonce=NONCE,
        kem_public_key=InstanceKemKey(b"\x01" * 32),
        signing_public_key=InstanceSigningKey(b"\x02" * 32),
        tls_public_key_sha256=b"\x03" * 32,
    )
    assert parse_claims(with_tls.to_bytes()).tls_public_key_sha256 == "03" * 32


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d | {"profile": "other"}, "profile"),
        (lambda d: d | {"nonce": "00"}, "nonce"),
        (lambda d: d | {"extra": 1}, "extra"),
        (lambda d: d | {"tee": "tpm"}, "tee"),
        (lambda d: d | {"kem_public_key": d["signing_public_key"]}, "must differ"),
    ],
)
def test_bad_claims_are_refused(mutate: object, message: str) -> None:
    doc = json.loads(claims_for(TeeKind.SGX).to_bytes())
    raw = canonical_json(mutate(doc))  # type: ignore[operator]
    with pytest.raises(EvidenceFormatError, match=message):
        parse_claims(raw)


def test_non_canonical_claims_are_refused() -> None:
    doc = json.loads(claims_for(TeeKind.SGX).to_bytes())
    with pytest.raises(EvidenceFormatError, match="canonical"):
        parse_claims(json.dumps(doc, indent=1).encode())


def test_nonce_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        claims_for(TeeKind.SGX, Nonce(b"short"))


def test_verified_quote_report_data_is_64_bytes() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        VerifiedQuote(tee=TeeKind.SGX, report_data=b"x", debug=False, measurements={})
