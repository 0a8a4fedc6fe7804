"""Benchmark: what governance costs the enclave node (issue #5, targets a-d).

Everything is real: a custodian service on loopback (SQLite), the digits classifier and
SmolLM2-135M-Instruct sealed, nodes booted through ``enclave.boot`` with the simulated TEE.

(a) **governance overhead** — requests/s (digits, ``/v1/infer``, 1 row) and tokens/s
    (SmolLM2, ``/v1/chat/completions``, ``max_tokens`` 32, greedy) of the node, and the
    server process's CPU time per request and per token (``/proc``: far less noisy than
    rates on a shared 2-core VM, where the load generator competes for the cores), against the
    **baseline**: the same engine object served bare (no admission, meter or telemetry)
    behind the same FastAPI/uvicorn stack, in the same server process. The server process is
    separate from the load generator (``--serve``); phases alternate node / bare in
    ``--rounds`` rounds so drift hits both. Target: loss <= 2 %.
(b) **per-request governance cost**: admission + reservation + settlement
    (``NodeRuntime.begin`` + ``finish``), timed per call, with the signing of a usage report
    timed apart (one per TTL/3, not per request). **Baseline**: AIGovTool's protocol, two
    synchronous HTTPS calls to the custodian per inference, modelled as two fresh-connection
    HTTPS round trips (TLS handshake each) to a loopback uvicorn server. Target: p50
    <= 0.2 ms and >= 250x lower than the baseline.
(c) **cold start**: ``boot()`` (bundle check, keys, nonce, evidence, enrolment, key release,
    decryption into a sealed memfd allocated during enrolment, llama.cpp load with the
    re-hash alongside) against the **baseline** plain ``llama_cpp.Llama`` load of the same
    GGUF file from the page cache, same context size and threads, alternating run by run.
    The HTTP client is made before the clock starts (its CA bundle takes ~50 ms to load).
    Target: <= 1.5x.
(d) **off-switch latency** with the push channel: a kill order posted to the admin API until
    the node's first 410, polled every millisecond; a fresh lease and node each time.
    Target: p99 < 1 s.

Usage: ``python bench/node.py [--rounds 4] [--round-seconds 5] [--cost-calls 20000]
[--https-calls 200] [--cold-runs 9] [--kills 30] [--aa]``. Results go to
``bench/results/node-<YYYYMMDD>.{json,md}`` with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import llama_cpp
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from _common import machine, save, tree_cpu_s
from modellease._http import read_body, service_app
from modellease.attestation import SimulatedAttester, runtime_measurement
from modellease.bundle import BundleReader
from modellease.custodian import auth
from modellease.custodian.ledger import Unit
from modellease.custodian.sealing import seal_model_file
from modellease.enclave import loading
from modellease.enclave.api_language import in_thread
from modellease.enclave.api_tensors import read_json_tensors
from modellease.enclave.boot import boot
from modellease.enclave.engines.llama import Generation, LlamaEngine, Sampling
from modellease.enclave.engines.onnx import OnnxEngine
from modellease.enclave.openai_wire import ChatRequest, chat_response
from modellease.enclave.wire import CustodianClient
from modellease.testing.digits import build_digits_model
from modellease.testing.server import free_port, serving
from modellease.testing.smollm import MODEL_NAME, smollm2_path
from modellease.testing.stage import (
    Stage,
    boot_node,
    create_lease,
    custodian_stage,
    node_config,
    serve_node,
)

BIG = 10**12  # budgets and slices that never run out during a phase
HOUR = dt.timedelta(hours=1)
QUESTION = [{"role": "user", "content": "Write a haiku about the sea."}]
MAX_TOKENS = 32
TENSOR_CONCURRENCY = 8
KILL_POLL_S = 0.001


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# ============================================================ (a) the server process
def bare_app(onnx: OnnxEngine, llama: LlamaEngine) -> FastAPI:
    """The same engines behind the same stack, without any governance."""
    app = service_app("bare")  # as the node's

    @app.post("/v1/infer")
    async def infer(request: Request) -> JSONResponse:
        tensors = onnx.check(read_json_tensors(await read_body(request, limit=1 << 24)))
        outputs = await asyncio.to_thread(onnx.infer, tensors)
        return JSONResponse({"outputs": {k: v.tolist() for k, v in outputs.items()}})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        parsed = ChatRequest.model_validate_json(await read_body(request, limit=1 << 20))
        prompt = await asyncio.to_thread(
            llama.chat_prompt, [m.model_dump() for m in parsed.messages]
        )
        generation, cancel = Generation(), threading.Event()
        sampling = Sampling(temperature=parsed.temperature, top_p=parsed.top_p, seed=parsed.seed)

        def run() -> Iterator[str]:
            return llama.generate(
                prompt,
                max_tokens=parsed.token_limit,
                sampling=sampling,
                cancel=cancel,
                into=generation,
            )

        text = "".join([piece async for piece in in_thread(run, cancel)])
        return JSONResponse(
            chat_response(
                rid="bare",
                model=MODEL_NAME,
                text=text,
                finish=generation.finish_reason,
                prompt=len(prompt),
                completion=generation.tokens,
            )
        )

    return app


def serve(conn: Any, work: Path, twin: bool = False) -> None:
    """Child: custodian, two governed nodes (digits, SmolLM2), and the bare app on the same
    engine objects; send the three URLs, serve until told to stop. With ``twin`` (the A/A
    check), the URLs said to be the nodes' are a second bare app on the same engines."""
    with custodian_stage(work / "home") as stage:
        digits = build_digits_model()
        nodes = {}
        for name, model, source, unit in (
            ("digits", "digits", None, Unit.REQUESTS),
            ("smollm2", MODEL_NAME, smollm2_path(), Unit.TOKENS),
        ):
            path = source or work / "digits.onnx"
            if source is None:
                path.write_bytes(digits.onnx)
            sealed = seal_model_file(
                stage.unlocked, path, work / f"{name}.mlbundle", name=model, version="1"
            )
            config = node_config(stage)
            create_lease(
                stage,
                name,
                sealed.manifest.bundle_id,
                config,
                unit=unit,
                budget=BIG,
                slice_size=BIG,
                heartbeat_ttl=HOUR,
                hard_expiry=HOUR,
            )
            nodes[name] = boot_node(stage, config, name, work / f"{name}.mlbundle")
        onnx, llama = nodes["digits"].engine, nodes["smollm2"].engine
        assert isinstance(onnx, OnnxEngine)
        assert isinstance(llama, LlamaEngine)
        with (
            serve_node(stage, nodes["digits"], renew=False) as tensor_node,
            serve_node(stage, nodes["smollm2"], renew=False) as chat_node,
            serving(bare_app(onnx, llama)) as bare,
            serving(bare_app(onnx, llama)) as twin_url,
        ):
            if twin:
                conn.send({"tensor": twin_url, "chat": twin_url, "bare": bare})
            else:
                conn.send({"tensor": tensor_node.url, "chat": chat_node.url, "bare": bare})
            conn.recv()  # stop


async def load(
    url: str, path: str, body: dict[str, Any], seconds: float, concurrency: int
) -> tuple[int, int, float]:
    """Requests and completion tokens done by ``concurrency`` clients that start requests
    for ``seconds``, and the wall time until the last one finished (the rate's divisor)."""
    done = tokens = 0
    started = time.perf_counter()
    deadline = started + seconds
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def worker() -> None:
            nonlocal done, tokens
            while time.perf_counter() < deadline:
                answer = await client.post(path, json=body)
                if answer.status_code != 200:
                    raise SystemExit(f"{url}{path}: {answer.status_code} {answer.text[:200]}")
                done += 1
                usage = answer.json().get("usage", {})
                tokens += int(usage.get("completion_tokens", 0))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, tokens, time.perf_counter() - started


def overhead(rounds: int, seconds: float, work: Path, *, twin: bool = False) -> dict[str, Any]:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("fork").Process(target=serve, args=(child, work, twin))
    server.start()
    urls = parent.recv()
    digits = build_digits_model()
    tensor_body = {"inputs": {"X": digits.test_inputs[:1].tolist()}}
    chat_body = {
        "model": MODEL_NAME,
        "messages": QUESTION,
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
    }
    series = ("rps", "tps", "cpu_us", "cpu_tok_us")  # rates, and server CPU per request/token
    totals: dict[str, list[float]] = {f"{who}_{s}": [] for who in ("node", "bare") for s in series}
    try:
        for name, path, body, conc in (
            ("tensor", "/v1/infer", tensor_body, TENSOR_CONCURRENCY),
            ("chat", "/v1/chat/completions", chat_body, 1),
        ):
            asyncio.run(load(urls[name], path, body, 1.0, conc))  # warm-up
            asyncio.run(load(urls["bare"], path, body, 1.0, conc))
            for r in range(rounds):
                order = [("node", urls[name]), ("bare", urls["bare"])]
                for who, url in order if r % 2 == 0 else order[::-1]:
                    cpu = tree_cpu_s(server.pid)
                    done, tokens, wall = asyncio.run(load(url, path, body, seconds, conc))
                    cpu = tree_cpu_s(server.pid) - cpu
                    if name == "tensor":
                        totals[f"{who}_rps"].append(done / wall)
                        totals[f"{who}_cpu_us"].append(cpu / done * 1e6)
                    else:
                        totals[f"{who}_tps"].append(tokens / wall)
                        totals[f"{who}_cpu_tok_us"].append(cpu / tokens * 1e6)
                print(f"  (a) {name} round {r + 1}/{rounds} done", flush=True)
    finally:
        parent.send("stop")
        server.join(timeout=60)
    node_rps, bare_rps = statistics.mean(totals["node_rps"]), statistics.mean(totals["bare_rps"])
    node_tps, bare_tps = statistics.mean(totals["node_tps"]), statistics.mean(totals["bare_tps"])
    return {
        "rounds": rounds,
        "round_seconds": seconds,
        "tensor": {
            "node_cpu_us": statistics.median(totals["node_cpu_us"]),
            "bare_cpu_us": statistics.median(totals["bare_cpu_us"]),
            "cpu_ratio": statistics.median(totals["node_cpu_us"])
            / statistics.median(totals["bare_cpu_us"]),
            "node_rps": node_rps,
            "bare_rps": bare_rps,
            "ratio": node_rps / bare_rps,
            "per_round": totals["node_rps"],
            "bare_per_round": totals["bare_rps"],
            "cpu_per_round": totals["node_cpu_us"],
            "bare_cpu_per_round": totals["bare_cpu_us"],
            "concurrency": TENSOR_CONCURRENCY,
        },
        "chat": {
            "node_cpu_tok_us": statistics.median(totals["node_cpu_tok_us"]),
            "bare_cpu_tok_us": statistics.median(totals["bare_cpu_tok_us"]),
            "cpu_ratio": statistics.median(totals["node_cpu_tok_us"])
            / statistics.median(totals["bare_cpu_tok_us"]),
            "node_tps": node_tps,
            "bare_tps": bare_tps,
            "ratio": node_tps / bare_tps,
            "per_round": totals["node_tps"],
            "bare_per_round": totals["bare_tps"],
            "cpu_per_round": totals["node_cpu_tok_us"],
            "bare_cpu_per_round": totals["bare_cpu_tok_us"],
            "max_tokens": MAX_TOKENS,
        },
    }


# ============================================================ (b) per-request cost
def self_signed(work: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - HOUR)
        .not_valid_after(now + HOUR)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = work / "cert.pem", work / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def https_server(work: Path) -> Iterator[tuple[str, Path]]:
    app = FastAPI()

    @app.post("/consume")
    async def consume() -> dict[str, bool]:
        return {"ok": True}

    cert, key = self_signed(work)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"https://127.0.0.1:{port}", cert
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def governance_cost(stage: Stage, work: Path, calls: int, https_calls: int) -> dict[str, Any]:
    digits = build_digits_model()
    (work / "cost.onnx").write_bytes(digits.onnx)
    sealed = seal_model_file(
        stage.unlocked, work / "cost.onnx", work / "cost.mlbundle", name="d", version="1"
    )
    config = node_config(stage)
    create_lease(
        stage,
        "cost",
        sealed.manifest.bundle_id,
        config,
        unit=Unit.REQUESTS,
        budget=BIG,
        slice_size=BIG,
        heartbeat_ttl=HOUR,
        hard_expiry=HOUR,
    )
    runtime = boot_node(stage, config, "cost", work / "cost.mlbundle").runtime
    ours: list[float] = []
    for _ in range(calls):
        start = time.perf_counter()
        reservation = runtime.begin(1, now=stage.clock())
        runtime.finish(reservation, units=1, prompt_tokens=1, flops=2)
        ours.append((time.perf_counter() - start) * 1000)
    reports: list[float] = []
    for _ in range(200):
        start = time.perf_counter()
        signed = runtime.report(now=stage.clock())
        reports.append((time.perf_counter() - start) * 1000)
        runtime._pending = None
        del signed
    theirs: list[float] = []
    with https_server(work) as (url, cert):
        context = ssl.create_default_context(cafile=str(cert))
        for _ in range(https_calls):
            start = time.perf_counter()
            for _ in range(2):  # AIGovTool: two synchronous calls per inference, new connections
                with httpx.Client(verify=context) as client:
                    client.post(f"{url}/consume").raise_for_status()
            theirs.append((time.perf_counter() - start) * 1000)
    return {
        "calls": calls,
        "ours_ms": {"p50": pct(ours, 50), "p99": pct(ours, 99), "mean": statistics.mean(ours)},
        "report_signing_ms": {"p50": pct(reports, 50), "p99": pct(reports, 99)},
        "https_calls": https_calls,
        "baseline_ms": {"p50": pct(theirs, 50), "p99": pct(theirs, 99)},
        "ratio_p50": pct(theirs, 50) / pct(ours, 50),
    }


# ============================================================ (c) cold start
PHASES = (  # (name, owner, attribute): boot's steps, timed by wrapping what boot calls
    ("nonce", CustodianClient, "nonce"),
    ("enrol", CustodianClient, "enrol"),
    ("wait for memory", loading.ReservedMemory, "take"),
    ("decrypt", BundleReader, "decrypt_to_file"),
    ("llama load", loading, "LlamaEngine"),
)


@contextmanager
def phase_timers() -> Iterator[dict[str, list[float]]]:
    """Time each of :data:`PHASES` while the block runs (seconds per call)."""
    times: dict[str, list[float]] = {name: [] for name, _, _ in PHASES}
    originals = [(owner, attr, getattr(owner, attr)) for _, owner, attr in PHASES]

    def timed(name: str, original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                times[name].append(time.perf_counter() - start)

        return call

    for (name, _, _), (owner, attr, original) in zip(PHASES, originals, strict=True):
        setattr(owner, attr, timed(name, original))
    try:
        yield times
    finally:
        for owner, attr, original in originals:
            setattr(owner, attr, original)


def cold_start(stage: Stage, work: Path, runs: int) -> dict[str, Any]:
    source = smollm2_path()
    sealed = seal_model_file(
        stage.unlocked, source, work / "cold.mlbundle", name=MODEL_NAME, version="1"
    )
    plain = work / "plain.gguf"
    plain.write_bytes(source.read_bytes())
    config = node_config(stage)
    ours: list[float] = []
    theirs: list[float] = []
    phases: dict[str, list[float]] = {}
    for i in range(runs):
        lease = create_lease(
            stage,
            f"cold-{i}",
            sealed.manifest.bundle_id,
            config,
            unit=Unit.TOKENS,
            budget=BIG,
            slice_size=1000,
        )
        attester = SimulatedAttester(runtime_measurement(config.raw))
        with (
            httpx.Client(base_url=stage.url) as http,  # set up before the clock starts
            phase_timers() as timers,
        ):
            start = time.perf_counter()
            booted = boot(
                config,
                lease_id=lease,
                bundle=work / "cold.mlbundle",
                attester=attester,
                custodian=CustodianClient(http),
                clock=stage.clock,
            )
            ours.append(time.perf_counter() - start)
        for name, seconds in timers.items():
            phases.setdefault(name, []).extend(seconds)
        booted.engine.close()
        start = time.perf_counter()
        llm = llama_cpp.Llama(
            model_path=str(plain), n_ctx=2048, n_threads=os.cpu_count(), verbose=False
        )
        theirs.append(time.perf_counter() - start)
        llm.close()
        print(
            f"  (c) run {i + 1}/{runs}: boot {ours[-1]:.3f} s, plain load {theirs[-1]:.3f} s",
            flush=True,
        )
    plain.unlink()
    return {
        "runs": runs,
        "boot_s": {"best": min(ours), "median": statistics.median(ours)},
        "plain_load_s": {"best": min(theirs), "median": statistics.median(theirs)},
        "ratio_median": statistics.median(ours) / statistics.median(theirs),
        "ratio_best": min(ours) / min(theirs),
        "phases_median_s": {name: statistics.median(v) for name, v in phases.items() if v},
    }


# ============================================================ (d) off-switch latency
def kill_latency(stage: Stage, work: Path, kills: int) -> dict[str, Any]:
    digits = build_digits_model()
    (work / "kill.onnx").write_bytes(digits.onnx)
    sealed = seal_model_file(
        stage.unlocked, work / "kill.onnx", work / "kill.mlbundle", name="d", version="1"
    )
    config = node_config(stage)
    token, _ = stage.plane.create_token(role=auth.Role.OPERATOR, lease_id=None, now=stage.clock())
    row = {"inputs": {"X": digits.test_inputs[:1].tolist()}}
    latencies: list[float] = []
    for i in range(kills):
        lease = create_lease(
            stage,
            f"kill-{i}",
            sealed.manifest.bundle_id,
            config,
            unit=Unit.REQUESTS,
            budget=100,
            slice_size=10,
        )
        booted = boot_node(stage, config, lease, work / "kill.mlbundle")
        with (
            serve_node(stage, booted) as node,
            httpx.Client(base_url=node.url) as http,
            httpx.Client(base_url=stage.url) as admin,
        ):
            while not node.renewer.stream_connected.is_set():
                time.sleep(0.01)
            assert http.post("/v1/infer", json=row).status_code == 200
            start = time.perf_counter()
            admin.post(
                f"/admin/v1/leases/{lease}/orders",
                json={"kind": "kill", "reason": "bench"},
                headers={"authorization": f"Bearer {token}"},
            ).raise_for_status()
            while http.post("/v1/infer", json=row).status_code != 410:
                time.sleep(KILL_POLL_S)
            latencies.append((time.perf_counter() - start) * 1000)
    return {
        "kills": kills,
        "ms": {"p50": pct(latencies, 50), "p99": pct(latencies, 99), "max": max(latencies)},
    }


# ============================================================ report
def markdown(report: dict[str, Any]) -> str:
    a, b, c, d = report["overhead"], report["cost"], report["cold_start"], report["kill"]
    m = report["machine"]
    tensor, chat = a["tensor"], a["chat"]
    rows = [
        (
            "(a) server CPU per tensor request, µs (median of rounds)",
            f"{tensor['node_cpu_us']:.0f}",
            f"bare {tensor['bare_cpu_us']:.0f}",
            f"{tensor['cpu_ratio']:.3f}",
            "<= 1.02",
        ),
        (
            "(a) server CPU per generated token, µs (median of rounds)",
            f"{chat['node_cpu_tok_us']:.0f}",
            f"bare {chat['bare_cpu_tok_us']:.0f}",
            f"{chat['cpu_ratio']:.3f}",
            "<= 1.02",
        ),
        (
            f"(a) tensor requests/s (digits, 1 row, {tensor['concurrency']} clients)",
            f"{tensor['node_rps']:.0f}",
            f"bare {tensor['bare_rps']:.0f}",
            f"{tensor['ratio']:.3f}",
            ">= 0.98",
        ),
        (
            f"(a) chat tokens/s (SmolLM2, {chat['max_tokens']} tokens, 1 client)",
            f"{chat['node_tps']:.1f}",
            f"bare {chat['bare_tps']:.1f}",
            f"{chat['ratio']:.3f}",
            ">= 0.98",
        ),
        (
            "(b) governance per request, p50 ms (p99)",
            f"{b['ours_ms']['p50']:.4f} ({b['ours_ms']['p99']:.4f})",
            f"2 fresh HTTPS calls {b['baseline_ms']['p50']:.2f} ({b['baseline_ms']['p99']:.2f})",
            f"{b['ratio_p50']:.0f}x lower",
            "<= 0.2 ms, >= 250x",
        ),
        (
            "(b) one usage report signed, p50 ms (one per TTL/3)",
            f"{b['report_signing_ms']['p50']:.3f}",
            "",
            "",
            "",
        ),
        (
            "(c) cold start s, median (best)",
            f"{c['boot_s']['median']:.3f} ({c['boot_s']['best']:.3f})",
            f"plain load {c['plain_load_s']['median']:.3f} ({c['plain_load_s']['best']:.3f})",
            f"{c['ratio_median']:.2f}",
            "<= 1.5",
        ),
        (
            f"(d) kill to first 410, ms p50 / p99 / max ({d['kills']} kills)",
            f"{d['ms']['p50']:.1f} / {d['ms']['p99']:.1f} / {d['ms']['max']:.1f}",
            "",
            "",
            "p99 < 1000",
        ),
    ]
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)
    phases = ", ".join(f"{k} {v:.3f}" for k, v in c.get("phases_median_s", {}).items())
    return f"""# Node benchmark ({report["date"]})

Machine: {m["cpu"]}, {m["cores"]} cores, {m["memory_gib"]} GiB, Python {m["python"]},
llama-cpp-python {m["llama_cpp"]}, commit {m["commit"]} (uncommitted src files:
{m["uncommitted_src_files"]}).

| | node | baseline | ratio | target |
|---|---:|---:|---:|---|
{table}

Per round (a), server CPU µs per tensor request: node
{[round(x) for x in tensor["cpu_per_round"]]},
bare {[round(x) for x in tensor["bare_cpu_per_round"]]};
per token: node {[round(x) for x in chat["cpu_per_round"]]},
bare {[round(x) for x in chat["bare_cpu_per_round"]]}.

Per round (a), requests/s: node {[round(x) for x in tensor["per_round"]]},
bare {[round(x) for x in tensor["bare_per_round"]]}; tokens/s: node
{[round(x, 1) for x in chat["per_round"]]}, bare {[round(x, 1) for x in chat["bare_per_round"]]}.

(c) boot by phase, median s: {phases}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--round-seconds", type=float, default=5.0)
    parser.add_argument("--cost-calls", type=int, default=20_000)
    parser.add_argument("--https-calls", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=9)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument(
        "--aa",
        action="store_true",
        help="only (a), with the bare app on both sides: how far two identical servers "
        "differ on this machine (printed, not saved)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modellease-bench-node-") as tmp:
        work = Path(tmp)
        if args.aa:
            same = overhead(args.rounds, args.round_seconds, work / "a", twin=True)
            print("A/A: bare app against a second bare app on the same engines")
            for part in ("tensor", "chat"):
                print(f"  {part}: {json.dumps(same[part])}")
            return
        print("(a) governance overhead ...", flush=True)
        over = overhead(args.rounds, args.round_seconds, work / "a")
        with custodian_stage(work / "home") as stage:
            print("(b) per-request governance cost ...", flush=True)
            cost = governance_cost(stage, work, args.cost_calls, args.https_calls)
            print("(c) cold start ...", flush=True)
            cold = cold_start(stage, work, args.cold_runs)
            print("(d) off-switch latency ...", flush=True)
            kill = kill_latency(stage, work, args.kills)
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(llama_cpp=llama_cpp.__version__),
        "overhead": over,
        "cost": cost,
        "cold_start": cold,
        "kill": kill,
    }
    text = markdown(report)
    print(text)
    if not args.no_save:
        save("node", report, text)


if __name__ == "__main__":
    sys.exit(main())
