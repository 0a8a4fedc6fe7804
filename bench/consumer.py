"""Benchmark: what the consumer's checks cost (issue #6).

(1) **verify_node** latency: the whole check (fresh nonce, ``GET /attestation`` over a new
    TLS connection, appraisal, TLS key binding, manifest signature) against a real node
    (simulated TEE, SmolLM2) on loopback. **Baseline** in the same run: the same
    ``GET /attestation?nonce=`` over a new TLS connection with nothing checked, so the
    difference is the verification itself.
(2) **receipts**: what a receipt adds to an answer's path on the node
    (``ServingContext.stamp``: two SHA-256 over the bodies, the receipt model, canonical
    JSON, its Merkle leaf hash, base64; no signature), timed in-process per call. Off the
    answer's path: signing a batch (one Ed25519 signature and the tree) of 1 and of 16
    receipts, the consumer fetching a proof over its pinned connection, and checking it
    offline (``check_receipt`` with both bodies). **Baseline**: the latency of a one-token
    chat completion through the pinned client in the same run. Target: a receipt adds < 1 %
    to it.

Usage: ``python bench/consumer.py [--verifications 200] [--receipts 2000] [--batches 300]
[--completions 50]``.
Results go to ``bench/results/consumer-<YYYYMMDD>.{json,md}`` with the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import llama_cpp
from fastapi.responses import JSONResponse

from _common import machine, save
from modellease.attestation import policy_from_mapping
from modellease.client import (
    check_receipt,
    check_response,
    fetch_receipt_proof,
    openai_client,
    pinned_client,
    verify_node,
)
from modellease.client.verify import unpinned_context
from modellease.custodian.ledger import Unit
from modellease.custodian.sealing import seal_model_file
from modellease.enclave.serving_context import ServingContext
from modellease.protocol.receipts import RECEIPT_HEADER
from modellease.testing.smollm import MODEL_NAME, smollm2_path
from modellease.testing.stage import (
    boot_node,
    create_lease,
    custodian_stage,
    dev_policy,
    node_config,
    serve_node,
)

BIG = 10**12
HOUR = dt.timedelta(hours=1)
TARGET_RATIO = 0.01


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "p50": pct(values_ms, 50),
        "p99": pct(values_ms, 99),
        "mean": statistics.mean(values_ms),
    }


def timed(fn: Any, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    with custodian_stage(work / "home") as stage:
        sealed = seal_model_file(
            stage.unlocked, smollm2_path(), work / "m.mlbundle", name=MODEL_NAME, version="1"
        )
        config = node_config(stage)
        create_lease(
            stage,
            "bench",
            sealed.manifest.bundle_id,
            config,
            unit=Unit.TOKENS,
            budget=BIG,
            slice_size=BIG,
            heartbeat_ttl=HOUR,
            hard_expiry=HOUR,
        )
        booted = boot_node(stage, config, "bench", work / "m.mlbundle")
        policy = policy_from_mapping(dev_policy(config))
        trusted = [stage.home.public_key]
        with serve_node(stage, booted, renew=False, tls=True) as node:
            verify_once = lambda: verify_node(node.url, policy=policy, trusted_custodians=trusted)  # noqa: E731

            def fetch_once() -> None:
                with httpx.Client(verify=unpinned_context()) as http:
                    http.get(
                        f"{node.url}/attestation", params={"nonce": "ab" * 32}
                    ).raise_for_status()

            verify_once(), fetch_once()  # warm-up
            verify_ms: list[float] = []
            fetch_ms: list[float] = []
            for _ in range(args.verifications):  # interleaved: drift hits both alike
                verify_ms += timed(verify_once, 1)
                fetch_ms += timed(fetch_once, 1)
            verified = verify_once()
            with openai_client(node=verified) as client:

                def complete() -> Any:
                    return client.chat.completions.with_raw_response.create(
                        model=MODEL_NAME,
                        messages=[{"role": "user", "content": "Hi"}],
                        max_tokens=1,
                        temperature=0,
                    )

                raw = complete()
                completion_ms = timed(complete, args.completions)
            http_response = raw.http_response
            proof = check_response(verified, http_response).proof  # a real receipt, checked
            request, body = http_response.request.content, http_response.content
            ctx = ServingContext(node=booted, now=stage.clock)
            answer = JSONResponse(raw.parse().model_dump(mode="json"))
            stamp_ms = timed(lambda: ctx.stamp(answer, request=request, units=1), args.receipts)
            receipts = booted.runtime.receipts

            def sealing(size: int) -> list[float]:
                """Milliseconds to sign batches of ``size`` receipts (issued untimed)."""
                out = []
                for _ in range(args.batches):
                    for _ in range(size):
                        ctx.stamp(answer, request=request, units=1)
                    start = time.perf_counter()
                    receipts.seal(stage.clock())
                    out.append((time.perf_counter() - start) * 1000)
                return out

            receipts.seal(stage.clock())
            seal_1_ms, seal_16_ms = sealing(1), sealing(16)
            header = http_response.headers[RECEIPT_HEADER]
            with pinned_client(verified) as http:
                proof_ms = timed(
                    lambda: fetch_receipt_proof(verified, header, http=http), args.batches
                )
            check_ms = timed(
                lambda: check_receipt(verified, proof, request=request, response=body),
                args.receipts,
            )
    completion_p50 = pct(completion_ms, 50)
    return {
        "verify_node_ms": summary(verify_ms),
        "fetch_only_ms": summary(fetch_ms),
        "verify_over_fetch_p50": pct(verify_ms, 50) / pct(fetch_ms, 50),
        "receipt_stamp_ms": summary(stamp_ms),
        "batch_sign_1_ms": summary(seal_1_ms),
        "batch_sign_16_ms": summary(seal_16_ms),
        "proof_fetch_ms": summary(proof_ms),
        "receipt_check_ms": summary(check_ms),
        "one_token_completion_ms": summary(completion_ms),
        "stamp_over_completion_p50": pct(stamp_ms, 50) / completion_p50,
        "check_over_completion_p50": pct(check_ms, 50) / completion_p50,
        "runs": {
            "verifications": args.verifications,
            "receipts": args.receipts,
            "batches": args.batches,
            "completions": args.completions,
        },
    }


def markdown(report: dict[str, Any]) -> str:
    m, r = report["machine"], report["result"]
    met = r["stamp_over_completion_p50"] < TARGET_RATIO
    completion = f"1-token completion {r['one_token_completion_ms']['p50']:.1f}"

    def share(key: str) -> str:
        return f"{100 * r[key]['p50'] / r['one_token_completion_ms']['p50']:.2f} %"

    rows = [
        (
            "verify_node, ms",
            r["verify_node_ms"],
            f"fetch only {r['fetch_only_ms']['p50']:.2f}",
            f"{r['verify_over_fetch_p50']:.2f}x",
            "",
        ),
        (
            "receipt on the answer's path (node), ms",
            r["receipt_stamp_ms"],
            completion,
            f"{100 * r['stamp_over_completion_p50']:.2f} %",
            f"< 1 %: {'met' if met else 'NOT met'}",
        ),
        (
            "batch of 1 signed (node, off the path), ms",
            r["batch_sign_1_ms"],
            completion,
            share("batch_sign_1_ms"),
            "",
        ),
        (
            "batch of 16 signed (node, off the path), ms",
            r["batch_sign_16_ms"],
            completion,
            share("batch_sign_16_ms"),
            "",
        ),
        (
            "proof fetched (consumer, pinned connection), ms",
            r["proof_fetch_ms"],
            completion,
            share("proof_fetch_ms"),
            "",
        ),
        (
            "proof checked offline (consumer), ms",
            r["receipt_check_ms"],
            completion,
            f"{100 * r['check_over_completion_p50']:.2f} %",
            "",
        ),
    ]
    lines = [
        f"# Consumer benchmark ({report['date']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
        f"llama-cpp-python {m['llama_cpp']}, commit {m.get('commit', '?')[:12]}.",
        "",
        "| what | p50 | p99 | baseline p50 (same run) | ratio | target |",
        "|---|---:|---:|---|---:|---|",
    ]
    for name, values, base, ratio, target in rows:
        lines.append(
            f"| {name} | {values['p50']:.3f} | {values['p99']:.3f} | {base} | {ratio} | {target} |"
        )
    lines += ["", f"Runs: {r['runs']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--verifications", type=int, default=200)
    parser.add_argument("--receipts", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--completions", type=int, default=50)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the simulated TEE's INSECURE warnings, once per call
    with tempfile.TemporaryDirectory(prefix="modellease-bench-consumer-") as tmp:
        result = run(args, Path(tmp))
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(llama_cpp=llama_cpp.__version__),
        "result": result,
    }
    text = markdown(report)
    print(text)
    if not args.no_save:
        save("consumer", report, text)


if __name__ == "__main__":
    sys.exit(main())
