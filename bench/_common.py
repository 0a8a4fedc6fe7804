"""What every benchmark records: the machine it ran on, the code it ran, and its results."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024


def machine(**extra: object) -> dict[str, object]:
    """CPU model, cores, memory, kernel and Python, then ``extra`` (versions, pinning)."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / MIB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **extra,
        **code_version(),
        "hostname": platform.node(),
    }


def code_version() -> dict[str, object]:
    """The commit, and how many files under src/ differ from it (read-only git)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=HERE.parent, check=False, capture_output=True, text=True
        )
        return done.stdout.strip()

    changed = [line for line in git("status", "--porcelain", "--", "src").splitlines() if line]
    return {"commit": git("rev-parse", "--short=12", "HEAD"), "uncommitted_src_files": len(changed)}


def save(name: str, report: dict[str, Any], markdown: str, *, variant: str = "") -> Path:
    """Write ``results/<name>-<YYYYMMDD>[-<variant>].{json,md}``; return that stem."""
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stem = results / f"{name}-{datetime.now(UTC):%Y%m%d}{'-' + variant if variant else ''}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(f"results: {stem}.{{json,md}}")
    return stem


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0.0
    for member in (pid, *map(int, children)):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # exited meanwhile
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total
