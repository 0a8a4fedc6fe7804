"""Known-answer vectors for bundle format v1, produced through the deterministic seam.

``tests/vectors/bundle/vectors.json`` lists the inputs (custodian seed, data key, bundle id,
time, frame size, model bytes rule) and the SHA-256 of each committed ``.mlbundle``. Any
change to the byte layout, the manifest, the signature or the frame construction changes
these bytes and fails here. Regenerate only for a deliberate format change:
``MODELLEASE_WRITE_VECTORS=1 pytest tests/unit/bundle/test_vectors.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from modellease._hazmat import SigningKey
from modellease.bundle import open_bundle, seal_stream
from modellease.keys import CustodianPublicKey, data_key

VECTORS = Path(__file__).parents[2] / "vectors" / "bundle"
CASES = json.loads((VECTORS / "vectors.json").read_text())["vectors"]


def model_for(case: dict[str, Any]) -> bytes:
    # rule "affine": byte i = (a * i + b) mod 256
    a, b = case["model"]["a"], case["model"]["b"]
    return bytes((a * i + b) % 256 for i in range(case["model"]["size"]))


def seal_case(case: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    seal_stream(
        io.BytesIO(model_for(case)),
        out,
        signer=SigningKey.from_seed(bytes.fromhex(case["custodian_seed"])),
        key=data_key(bytes.fromhex(case["data_key"])),
        bundle_id=case["bundle_id"],
        created_at=datetime.fromisoformat(case["created_at"]),
        name=case["name"],
        version=case["version"],
        model_format=case["format"],
        provenance=case["provenance"],
        frame_size=case["frame_size"],
    )
    return out.getvalue()


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_seal_reproduces_the_committed_bytes(case: dict[str, Any]) -> None:
    blob = seal_case(case)
    path = VECTORS / case["file"]
    if os.environ.get("MODELLEASE_WRITE_VECTORS") == "1":  # pragma: no cover - deliberate only
        path.write_bytes(blob)
    committed = path.read_bytes()
    assert hashlib.sha256(committed).hexdigest() == case["bundle_sha256"]
    assert blob == committed


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_committed_vector_opens_to_the_model(case: dict[str, Any]) -> None:
    custodian = SigningKey.from_seed(bytes.fromhex(case["custodian_seed"])).public_bytes()
    opened = open_bundle(
        VECTORS / case["file"],
        data_key=data_key(bytes.fromhex(case["data_key"])),
        trusted_custodians=[CustodianPublicKey(custodian)],
    )
    assert opened.plaintext == model_for(case)
    assert opened.manifest.model.sha256 == case["model"]["sha256"]
