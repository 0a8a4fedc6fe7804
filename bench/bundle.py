"""Benchmark: seal and open a generated model, against the raw AES-GCM floor.

Each phase runs in its own child process so that its peak RSS is its own. Phases are run
round-robin for ``--repeat`` rounds (floor, open, ... then again), so that drift in the
machine's speed hits baseline and candidate alike; each time is the best of the rounds,
and the median is recorded too. The bundle file is read from the page cache (it was just
written), so this measures CPU and memory cost, not the disk.

Phases:

* ``floor``       AESGCM.decrypt_into of the same frames (already in memory) into a
                  preallocated, already-touched buffer: the raw decryption floor.
* ``floor-fresh`` the same into a freshly allocated buffer: adds first-touch page faults,
                  the fair floor for anything that must allocate its output.
* ``open``        BundleReader.open + decrypt_into a preallocated, touched buffer (the
                  enclave path), without and with the concurrent SHA-256 re-hash.
* ``open-bundle`` open_bundle end to end (allocates its own buffer), both ways.
* ``seal``        seal_stream from the model file to the bundle file (two passes).

Usage: ``python bench/bundle.py [--size-mib 1024] [--repeat 3] [--workdir bench/work]``.
Results go to ``bench/results/`` as JSON and Markdown, with the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import cryptography
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from _common import machine, save
from modellease._hazmat import SigningKey
from modellease.bundle import BundleReader, open_bundle, seal_stream
from modellease.bundle.format import TAG_SIZE, frame_aad, frame_count, frame_nonce
from modellease.keys import CustodianPublicKey, data_key

HERE = Path(__file__).resolve().parent
SEED = b"\x07" * 32  # benchmark custodian key: fixed, never used elsewhere
DEK = b"\x5a" * 32
MIB = 1024 * 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_rss_mib() -> float:
    with Path("/proc/self/statm").open() as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def custodian() -> list[CustodianPublicKey]:
    return [CustodianPublicKey(SigningKey.from_seed(SEED).public_bytes())]


def touched(size: int) -> bytearray:
    buf = bytearray(size)
    buf[::4096] = b"\x01" * len(range(0, size, 4096))
    return buf


def best_of(repeat: int, run: object) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


# ------------------------------------------------------------------ phases (child side)
def phase_seal(work: Path, repeat: int) -> dict[str, float]:
    model, bundle = work / "model.bin", work / "model.mlbundle"

    def run() -> None:
        with model.open("rb") as src, bundle.open("wb") as out:
            seal_stream(
                src,
                out,
                signer=SigningKey.from_seed(SEED),
                key=data_key(DEK),
                bundle_id="be" * 16,
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
                name="bench",
                version="1",
                model_format="safetensors",
                provenance={"generated": "bench/bundle.py"},
            )

    return {"seconds": best_of(repeat, run)}


def _frames(work: Path) -> tuple[bytes, bytes, int, int]:
    with BundleReader.open(work / "model.mlbundle", trusted_custodians=custodian()) as r:
        size, frame = r.manifest.model.size, r.manifest.frame_size
        raw = r.manifest.to_canonical_json()
    blob = (work / "model.mlbundle").read_bytes()
    return blob[len(blob) - (size + frame_count(size, frame) * TAG_SIZE) :], raw, size, frame


def _decrypt_all(aead: AESGCM, sealed: memoryview, aad: bytes, out: memoryview, frame: int) -> None:
    n = frame_count(len(out), frame)
    for i in range(n):
        plain = min(frame, len(out) - i * frame)
        start = i * (frame + TAG_SIZE)
        aead.decrypt_into(
            frame_nonce(i, final=i == n - 1),
            sealed[start : start + plain + TAG_SIZE],
            aad,
            out[i * frame : i * frame + plain],
        )


def phase_floor(work: Path, repeat: int, *, fresh: bool) -> dict[str, float]:
    sealed, raw, size, frame = _frames(work)
    aead, aad, view = AESGCM(DEK), frame_aad(raw), memoryview(sealed)
    if fresh:

        def run() -> None:
            _decrypt_all(aead, view, aad, memoryview(bytearray(size)), frame)

        return {"seconds": best_of(repeat, run)}
    out = memoryview(touched(size))
    return {"seconds": best_of(repeat, lambda: _decrypt_all(aead, view, aad, out, frame))}


def phase_open(work: Path, repeat: int, *, digest: bool) -> dict[str, float]:
    path = work / "model.mlbundle"
    with BundleReader.open(path, trusted_custodians=custodian()) as r:
        out = touched(r.manifest.model.size)

    def run() -> None:
        with BundleReader.open(path, trusted_custodians=custodian()) as reader:
            reader.decrypt_into(out, data_key=data_key(DEK), verify_digest=digest)

    return {"seconds": best_of(repeat, run)}


def phase_open_bundle(work: Path, repeat: int, *, digest: bool) -> dict[str, float]:
    baseline = current_rss_mib()
    peak_extra = 0.0

    def run() -> None:
        nonlocal peak_extra
        opened = open_bundle(
            work / "model.mlbundle",
            data_key=data_key(DEK),
            trusted_custodians=custodian(),
            verify_digest=digest,
        )
        peak_extra = max(peak_extra, current_rss_mib() - baseline)
        del opened

    seconds = best_of(repeat, run)
    return {"seconds": seconds, "baseline_rss_mib": baseline, "rss_growth_mib": peak_extra}


PHASES = {
    "seal": phase_seal,
    "floor": lambda w, r: phase_floor(w, r, fresh=False),
    "floor-fresh": lambda w, r: phase_floor(w, r, fresh=True),
    "open": lambda w, r: phase_open(w, r, digest=False),
    "open+digest": lambda w, r: phase_open(w, r, digest=True),
    "open-bundle": lambda w, r: phase_open_bundle(w, r, digest=False),
    "open-bundle+digest": lambda w, r: phase_open_bundle(w, r, digest=True),
}


def child(name: str, work: Path, repeat: int) -> None:
    result = PHASES[name](work, repeat)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


# ------------------------------------------------------------------ orchestration
def generate_model(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            chunk = min(left, 64 * MIB)
            f.write(os.urandom(chunk))
            left -= chunk


def run_phase(name: str, work: Path, repeat: int) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        name,
        "--workdir",
        str(work),
        "--repeat",
        str(repeat),
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict[str, float]]) -> dict[str, float]:
    """Best and median time over rounds; the largest peak RSS; other fields of the best run."""
    best = min(runs, key=lambda r: r["seconds"])
    return best | {
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
    }


def markdown(report: dict[str, object]) -> str:
    size = report["size_mib"]
    res: dict[str, dict[str, float]] = report["phases"]  # type: ignore[assignment]
    ratios: dict[str, float] = report["ratios"]  # type: ignore[assignment]
    lines = [
        f"# Bundle benchmark, {report['date']}",
        "",
        f"Model: {size} MiB of random bytes, 1 MiB frames, {report['repeat']} interleaved rounds; "
        "bundle read from the page cache.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()),  # type: ignore[attr-defined]
        "",
        "| phase | best s | median s | GB/s (best) | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in res.items():
        gbps = size * MIB / r["seconds"] / 1e9
        lines.append(
            f"| {name} | {r['seconds']:.3f} | {r['median_seconds']:.3f} | {gbps:.2f} "
            f"| {r['peak_rss_mib']:.0f} |"
        )
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in ratios.items()]
    lines += ["", "Command: `" + str(report["command"]) + "`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=HERE / "work")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args.phase, args.workdir, args.repeat)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    size = args.size_mib * MIB
    print(f"generating a {args.size_mib} MiB model in {args.workdir} ...", flush=True)
    generate_model(args.workdir / "model.bin", size)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in PHASES}
    for round_number in range(args.repeat):
        print(f"  round {round_number + 1}/{args.repeat}:", end="", flush=True)
        for name in PHASES:
            rounds[name].append(run_phase(name, args.workdir, 1))
            print(f" {name} {rounds[name][-1]['seconds']:.3f}s", end="", flush=True)
        print()
    phases = {name: summarise(runs) for name, runs in rounds.items()}
    for name, r in phases.items():
        gbps = size / r["seconds"] / 1e9
        print(
            f"  {name}: best {r['seconds']:.3f} s ({gbps:.2f} GB/s), median "
            f"{r['median_seconds']:.3f} s, peak RSS {r['peak_rss_mib']:.0f} MiB"
        )
    t = {k: v["seconds"] for k, v in phases.items()}
    ob, model_mib = phases["open-bundle"], args.size_mib
    ratios = {
        "open / floor (target >= 0.7)": t["floor"] / t["open"],
        "open+digest / floor": t["floor"] / t["open+digest"],
        "open-bundle / floor-fresh": t["floor-fresh"] / t["open-bundle"],
        "open-bundle+digest / floor-fresh": t["floor-fresh"] / t["open-bundle+digest"],
        "open-bundle peak RSS - model size (MiB, target <= 64)": ob["peak_rss_mib"] - model_mib,
        "open-bundle RSS growth - model size (MiB, excl. interpreter)": ob["rss_growth_mib"]
        - model_mib,
        "seal peak RSS (MiB)": phases["seal"]["peak_rss_mib"],
    }
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "size_mib": args.size_mib,
        "repeat": args.repeat,
        "machine": machine(
            cryptography=cryptography.__version__,
            openssl=openssl_backend.openssl_version_text(),
        ),
        "phases": phases,
        "ratios": ratios,
        "command": f"python bench/bundle.py --size-mib {args.size_mib} --repeat {args.repeat}",
    }
    for k, v in ratios.items():
        print(f"  {k}: {v:.2f}")
    save("bundle", report, markdown(report), variant=f"{args.size_mib}mib")
    for name in ("model.bin", "model.mlbundle"):
        (args.workdir / name).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
