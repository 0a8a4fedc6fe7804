"""``modellease demo``: the story so far, end to end, on a real model.

Today this is the custodian's half: create a home, build the digits classifier, seal it,
inspect the bundle, unseal it, open it in memory the way the enclave will and classify
held-out digits with onnxruntime, show that a tampered copy is refused, and appraise a
node's (simulated) attestation evidence.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from modellease._hazmat import SigningKey
from modellease.attestation import (
    InstanceClaims,
    SimulatedAttester,
    TeeKind,
    appraise,
    policy_from_mapping,
    produce_evidence,
    runtime_measurement,
)
from modellease.bundle import inspect_bundle, open_bundle
from modellease.cli._common import out, reporting
from modellease.custodian.home import CustodianHome
from modellease.custodian.sealing import seal_model_file, unseal_bundle
from modellease.errors import AttestationError, BundleIntegrityError
from modellease.keys import InstanceKemKey, InstanceSigningKey, Nonce
from modellease.testing.digits import accuracy, build_digits_model

MIN_DEMO_ACCURACY = 0.9  # the digits MLP scores ~97 %; far below means something is broken


def _step(number: int, text: str) -> None:
    out.print()
    out.print(Text.assemble((f"{number}. ", "bold cyan"), (text, "bold")))


def _attestation_story() -> bool:
    """Simulated evidence binding fresh instance keys, appraised twice: admitted only by a
    policy that says ``unsafe_allow_simulated``, and marked insecure when admitted."""
    measurement = runtime_measurement(b"demo node configuration")
    nonce = Nonce(os.urandom(32))
    claims = InstanceClaims.new(
        tee=TeeKind.SIMULATED,
        nonce=nonce,
        kem_public_key=InstanceKemKey(os.urandom(32)),
        signing_public_key=InstanceSigningKey(SigningKey.generate().public_bytes()),
    )
    evidence = produce_evidence(SimulatedAttester(measurement), claims)
    out.print(f"   runtime measurement {measurement.hex()[:32]}…, nonce {nonce.hex()[:16]}…")
    pinned = ["00" * 48]  # a production policy names the audited image's measurements
    strict = policy_from_mapping(
        {
            "allowed_tees": ["tdx"],
            "tdx": {"mrtd": pinned, "rtmr0": pinned, "rtmr1": pinned, "rtmr2": pinned},
        }
    )
    try:
        appraise(evidence, policy=strict, expected_nonce=nonce, now=datetime.now(UTC))
    except AttestationError as exc:
        out.print(f"   production policy: refused at step {exc.step} ({exc.reason})")
    else:
        return False
    dev = policy_from_mapping(
        {
            "allowed_tees": ["simulated"],
            "unsafe_allow_simulated": True,
            "simulated": {"measurement": [measurement.hex()]},
        }
    )
    result = appraise(evidence, policy=dev, expected_nonce=nonce, now=datetime.now(UTC))
    out.print(
        f"   development policy: verified, insecure={result.insecure}, "
        f"KEM key {result.kem_key.hex()[:16]}… bound by the report data"
    )
    return result.insecure and result.kem_key == claims.kem_key


def demo(
    workdir: Annotated[
        Path | None,
        typer.Option(help="Keep the demo's files here (default: a temporary directory)."),
    ] = None,
) -> None:
    """Run the custodian's half of the lease story on a real ONNX model."""
    logging.basicConfig(level=logging.WARNING, format="   %(levelname)s %(message)s")
    with reporting():
        if workdir is None:
            with tempfile.TemporaryDirectory(prefix="modellease-demo-") as tmp:
                _run(Path(tmp))
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            _run(workdir)


def _run(work: Path) -> None:
    _step(1, "The custodian creates its home (identity key, encrypted key store)")
    home = CustodianHome.init(work / "custodian-home")
    unlocked = home.unlock()
    out.print(f"   custodian fingerprint {home.fingerprint}")

    _step(2, "A real model: MLP digit classifier trained on scikit-learn's digits, as ONNX")
    model = build_digits_model()
    model_path = work / "digits.onnx"
    model_path.write_bytes(model.onnx)
    digest = hashlib.sha256(model.onnx).hexdigest()
    out.print(f"   {model_path.name}: {len(model.onnx)} bytes, sha256 {digest}")

    _step(3, "Seal it: signed manifest + AES-256-GCM frames; the data key stays home")
    bundle = work / "digits.onnx.mlbundle"
    sealed = seal_model_file(
        unlocked,
        model_path,
        bundle,
        name="digits-mlp",
        version="1.0",
        provenance={"dataset": "UCI optical digits (scikit-learn copy)", "trainer": "demo"},
        frame_size=4096,
    )
    out.print(
        f"   bundle {bundle.name}: {bundle.stat().st_size} bytes, id {sealed.manifest.bundle_id}"
    )

    _step(4, "Inspect the bundle without any key")
    found = inspect_bundle(bundle)
    shown = found.manifest
    out.print(
        f"   signature valid: {found.signature_valid}; custodian {shown.custodian.fingerprint}"
    )
    out.print(f"   model {shown.model.name} {shown.model.version}, sha256 {shown.model.sha256}")

    _step(5, "Unseal on the custodian side and compare")
    restored = work / "digits.restored.onnx"
    unseal_bundle(home, unlocked, bundle, restored)
    same = restored.read_bytes() == model.onnx
    out.print(f"   round trip identical: {same}")

    _step(6, "Open in memory, as the enclave will, and classify held-out digits")
    opened = open_bundle(
        bundle,
        data_key=unlocked.keys.get(sealed.manifest.bundle_id),
        trusted_custodians=[home.public_key],
    )
    score = accuracy(bytes(opened.plaintext), model.test_inputs, model.test_labels)
    out.print(f"   accuracy on {len(model.test_labels)} held-out digits: {score:.1%}")

    _step(7, "Flip one byte of a copy: the bundle is refused")
    tampered = work / "tampered.mlbundle"
    data = bytearray(bundle.read_bytes())
    data[-100] ^= 0x01
    tampered.write_bytes(data)
    try:
        open_bundle(
            tampered,
            data_key=unlocked.keys.get(sealed.manifest.bundle_id),
            trusted_custodians=[home.public_key],
        )
    except BundleIntegrityError as exc:
        refused = True
        out.print(f"   refused: {exc}")
    else:
        refused = False

    _step(8, "A node attests (simulated TEE): the custodian appraises its evidence")
    attested = _attestation_story()

    ok = same and score >= MIN_DEMO_ACCURACY and refused and attested
    out.print()
    out.print(Text("demo complete", "bold green") if ok else Text("demo FAILED", "bold red"))
    out.print("   next (later issues): lease, key release to the attested node, metered serving,")
    out.print("   budget extension and the off-switch")
    if not ok:
        raise typer.Exit(1)
