"""Recorded SEV-SNP vectors (tests/vectors/sev-snp/) and their expected outcomes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).parents[3] / "vectors" / "sev-snp"
CASES: list[dict[str, Any]] = json.loads((VECTORS / "expected.json").read_text())["sev_snp"]
CASE_IDS = [case["report"] for case in CASES]


def read(name: str) -> bytes:
    """A vector file's bytes; ``.hex`` files hold the report as hex text."""
    data = (VECTORS / name).read_bytes()
    return bytes.fromhex(data.decode("ascii").strip()) if name.endswith(".hex") else data


def case_for(report: str) -> dict[str, Any]:
    return next(case for case in CASES if case["report"] == report)


def report_of(case: dict[str, Any]) -> bytes:
    return read(case["report"])


def endorsements_of(case: dict[str, Any]) -> dict[str, bytes]:
    return {case["endorsement_key"]: read(case["endorsement"])}


def now_of(case: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(case["now_utc"])


def utc(text: str) -> datetime:
    """A timezone-aware datetime from EXPECTED.json's ``YYYY-MM-DD HH:MM:SS+00:00``."""
    return datetime.fromisoformat(text)


DEBUG_REPORT = "gosevguest_attestation.bin"
VIRTEE_REPORT = "virtee_report_milan.hex"
TRUSTEE_REPORT = "trustee_snp_test-report.bin"
VLEK_REPORT = "trustee_snp_test-vlek-report.bin"
TURIN_VCEK = "virtee_vcek_turin.der"
