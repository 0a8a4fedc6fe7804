"""``modellease demo``: the story so far, end to end, on a real model.

Create a home, build the digits classifier, seal it, inspect the bundle, unseal it, open it
in memory the way the enclave will and classify held-out digits with onnxruntime, show that
a tampered copy is refused, appraise a node's (simulated) attestation evidence; then lease
the model to a node that serves it through the enclave's lease keeper, meter and ONNX engine
until it runs out of budget, is extended, and is killed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import numpy.typing as npt
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
from modellease.custodian.app import create_app
from modellease.custodian.home import CustodianHome
from modellease.custodian.ledger import Unit
from modellease.custodian.sealing import seal_model_file, unseal_bundle
from modellease.custodian.service import ControlPlane, LeaseSpec
from modellease.custodian.store import connect, default_url, migrate
from modellease.enclave import AllowanceExhaustedError, LeaseKeeper, Meter
from modellease.enclave.engines import OnnxEngine
from modellease.enclave.telemetry import ReportChain, counters_of
from modellease.errors import AttestationError, BundleIntegrityError
from modellease.keys import CustodianPublicKey, InstanceKemKey, InstanceSigningKey, Nonce
from modellease.protocol import RenewResponse, SignedDocument
from modellease.testing.digits import DigitsModel, accuracy, build_digits_model
from modellease.testing.node import DEFAULT_CONFIG, SimulatedNode
from modellease.testing.server import serving

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


class _Node:
    """The demo's node: the simulated node for the wire, and the enclave's own kernels (lease
    keeper, meter, report chain) and ONNX engine deciding and doing the work, as the node will."""

    def __init__(self, wire: SimulatedNode, engine: OnnxEngine, custodian_key: bytes) -> None:
        assert wire.instance_id is not None
        assert wire.signed_grant is not None
        self.wire, self.engine = wire, engine
        self.keeper = LeaseKeeper(
            lease_id=wire.lease_id,
            instance_id=wire.instance_id,
            custodian_key=CustodianPublicKey(custodian_key),
        )
        self.meter = Meter()
        self.reports = ReportChain(
            lease_id=wire.lease_id, instance_id=wire.instance_id, signer=wire.signing_key
        )
        self._take(wire.signed_grant)

    def _take(self, signed: SignedDocument) -> None:
        grant = self.keeper.accept_grant(signed, now=datetime.now(UTC))
        self.meter.set_allowance(grant.allowance)

    def renew(self) -> RenewResponse:
        """Report the meter's counts (signed, chained); take the new grant and the orders."""
        now = datetime.now(UTC)
        report = self.reports.next_report(counters_of(self.meter.usage()), now=now)
        answer = self.wire.renew(report.to_json())
        for order in answer.orders:
            self.keeper.accept_order(order)
        if answer.grant is not None:
            self._take(answer.grant)
        if self.keeper.must_drop_model(now) and not self.engine.closed:
            self.engine.close()  # killed or past the hard expiry: weights and key go
            self.wire.data_key = None
        return answer

    def classify(self, digit: npt.NDArray[np.float32]) -> int | str:
        """One request: admitted, reserved, run, settled; or the reason it was refused."""
        admission = self.keeper.admission(datetime.now(UTC))
        if not admission.allowed:
            return f"{admission.status} {admission.reason}"
        try:
            reservation = self.meter.reserve(1)
        except AllowanceExhaustedError:
            self.renew()  # the slice ran out: ask for the next one first
            try:
                reservation = self.meter.reserve(1)
            except AllowanceExhaustedError as exc:
                return f"429 {exc.reason}"
        label = self.engine.infer(self.engine.check({"X": digit[None, :]}))["label"][0]
        self.meter.settle(reservation, units=1)
        return int(label)


def _serve_until_refused(
    node: _Node,
    inputs: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    start: int,
    limit: int,
) -> tuple[int, int, str]:
    """Classify digits one request at a time until one is refused; renew every 5."""
    served = correct = 0
    for i in range(start, start + limit):
        answer = node.classify(inputs[i])
        if isinstance(answer, str):
            return served, correct, answer
        served += 1
        correct += int(answer == labels[i])
        if served % 5 == 0:
            node.renew()
    return served, correct, "none"


def _lease_story(home: CustodianHome, bundle_id: str, bundle: Path, model: DigitsModel) -> bool:
    unlocked = home.unlock()
    engine = connect(default_url(home.path))
    migrate(engine)
    plane = ControlPlane(engine, signer=unlocked.signer, keys=unlocked.keys)
    now = datetime.now(UTC)
    _step(9, "The custodian leases the bundle: 30 requests, granted in slices of 10")
    policy = {
        "allowed_tees": ["simulated"],
        "unsafe_allow_simulated": True,
        "simulated": {"measurement": [runtime_measurement(DEFAULT_CONFIG).hex()]},
    }
    plane.create_lease(
        LeaseSpec(
            lease_id="digits-lease",
            bundle_id=bundle_id,
            unit=Unit.REQUESTS,
            budget=30,
            slice_size=10,
            heartbeat_ttl=timedelta(seconds=30),
            hard_expiry=timedelta(seconds=60),
            ends_at=now + timedelta(days=30),
            policy=policy,
        ),
        now=now,
    )
    ok = True
    with serving(create_app(plane)) as url, httpx.Client(base_url=url) as http:
        out.print(f"   custodian service on {url} (SQLite in the custodian home)")
        node = SimulatedNode(http, "digits-lease", home.public_key)
        _step(10, "A node enrols: attested, first grant, data key wrapped to its own key")
        grant = node.enrol()
        assert node.data_key is not None
        opened = open_bundle(bundle, data_key=node.data_key, trusted_custodians=[home.public_key])
        engine_ = OnnxEngine(bytes(opened.plaintext))
        opened.wipe()  # the engine holds the model now
        enclave = _Node(node, engine_, home.public_key)
        out.print(
            f"   instance {node.instance_id}: grant #{grant.seq} allows {grant.allowance} "
            "requests; the bundle opened in memory with the released key"
        )
        _step(11, "It serves real inferences, reporting signed usage, until the budget runs out")
        served, correct, refused = _serve_until_refused(
            enclave, model.test_inputs, model.test_labels, 0, 50
        )
        out.print(
            f"   served {served} classifications ({correct} correct); request {served + 1} "
            f"refused by the node's meter: {refused}"
        )
        ok = ok and served == 30 and refused == "429 allowance_exhausted"
        _step(12, "The custodian extends the lease by 20 requests")
        plane.extend("digits-lease", units=20, now=datetime.now(UTC))
        more, correct, refused = _serve_until_refused(
            enclave, model.test_inputs, model.test_labels, served, 50
        )
        out.print(
            f"   served {more} more ({correct} correct); the grant now allows "
            f"{node.grant.allowance if node.grant else 0}; then {refused}"
        )
        ok = ok and more == 20
        _step(13, "The off-switch: the custodian kills the instance")
        plane.order(
            lease_id="digits-lease",
            kind="kill",
            instance_id=node.instance_id,
            reason="demo: lease terminated",
            now=datetime.now(UTC),
        )
        answer = enclave.renew()
        after = enclave.classify(model.test_inputs[0])
        killed = enclave.keeper.killed and enclave.engine.closed and after == "410 killed"
        out.print(
            f"   next renewal: no grant ({answer.withheld}); {len(answer.orders)} signed kill "
            f"order verified by the node's lease keeper; engine and data key dropped; the next "
            f"request gets {after}"
        )
        ok = ok and killed
    engine.dispose()
    return ok


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

    leased = _lease_story(home, sealed.manifest.bundle_id, bundle, model)

    ok = same and score >= MIN_DEMO_ACCURACY and refused and attested and leased
    out.print()
    out.print(Text("demo complete", "bold green") if ok else Text("demo FAILED", "bold red"))
    out.print("   next (later issues): the enclave node runtime (issue #5) and attested TLS with")
    out.print("   per-response receipts for consumers (issue #6)")
    if not ok:
        raise typer.Exit(1)
