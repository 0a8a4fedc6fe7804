"""Loading the recorded DCAP vectors and building evidence around them for tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modellease._hazmat import SigningKey
from modellease.attestation import Evidence, InstanceClaims, TeeKind
from modellease.attestation.backends.dcap import QuoteFrame
from modellease.keys import InstanceKemKey, InstanceSigningKey, Nonce

VECTORS = Path(__file__).parents[2] / "vectors"
EXPECTED: list[dict[str, Any]] = json.loads((VECTORS / "dcap-expected.json").read_text())["dcap"]
NONCE = Nonce(bytes(range(32)))


def raw_quote(name: str) -> bytes:
    """The file as recorded (hex files decoded), padding and appended bytes included."""
    data = (VECTORS / name).read_bytes()
    if name.endswith(".hex"):
        data = bytes.fromhex(data.decode().strip().removeprefix("0x"))
    return data


def quote(name: str) -> bytes:
    """The quote cut to its own length, as an attester sends it."""
    data = raw_quote(name)
    return data[: QuoteFrame.from_bytes(data).length]


def collateral(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def at(case: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(case["now_unix"], UTC)


def claims_for(tee: TeeKind, nonce: Nonce = NONCE) -> InstanceClaims:
    return InstanceClaims.new(
        tee=tee,
        nonce=nonce,
        kem_public_key=InstanceKemKey(b"\x11" * 32),
        signing_public_key=InstanceSigningKey(SigningKey.from_seed(b"\x22" * 32).public_bytes()),
    )


def dcap_evidence(case: dict[str, Any], *, with_collateral: bool = True) -> Evidence:
    tee = TeeKind.SGX if case["tee"] == "SGX" else TeeKind.TDX
    return Evidence(
        tee=tee,
        quote=quote(case["quote"]),
        claims=claims_for(tee).to_bytes(),
        endorsements={"dcap_collateral": collateral(case["collateral"])} if with_collateral else {},
    )


def case(quote_name: str, *, result: str | None = None) -> dict[str, Any]:
    for c in EXPECTED:
        if c["quote"] == quote_name and (result is None or c["result"] == result):
            return c
    raise KeyError(quote_name)
