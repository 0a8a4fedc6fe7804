"""``modellease attest verify``: appraise recorded evidence offline against a policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from modellease.attestation import (
    AppraisalResult,
    DirectoryCollateral,
    Evidence,
    appraise,
    load_policy,
)
from modellease.cli._common import err, out, printable, refused, reporting
from modellease.errors import AttestationError, InvalidInputError
from modellease.keys import Nonce

attest_app = typer.Typer(help="Remote attestation: appraise TEE evidence.")


def _parse_time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"--at {text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise InvalidInputError("--at needs a time zone, e.g. 2025-07-01T00:00:00Z")
    return when


def _parse_nonce(text: str) -> Nonce:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidInputError("--nonce must be 32 bytes as 64 hex digits")
    return Nonce(raw)


def _show(result: AppraisalResult) -> None:
    if result.insecure:
        err.print(Text("INSECURE: simulated TEE evidence; it proves nothing", "bold red"))
    table = Table(show_header=False, box=None)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("verdict", Text("verified", "green"))
    table.add_row("tee", result.tee.value)
    table.add_row("tcb status", result.tcb_status or "n/a")
    table.add_row("advisories", ", ".join(result.advisory_ids) or "none")
    for name, value in sorted(result.measurements.items()):
        table.add_row(name, Text(printable(str(value))))
    table.add_row("kem key", result.kem_key.hex())
    table.add_row("signing key", result.signing_key.hex())
    table.add_row("appraised at", result.appraised_at.isoformat())
    out.print(table)


@attest_app.command("verify")
def verify(
    evidence: Annotated[Path, typer.Argument(help="Evidence JSON file.")],
    policy: Annotated[Path, typer.Option(help="Appraisal policy (.toml or .json).")],
    nonce: Annotated[str, typer.Option(help="The nonce you issued, 64 hex digits.")],
    collateral: Annotated[
        Path | None,
        typer.Option(help="Directory of DCAP collateral: <tee>/<FMSPC>.json (sgx/, tdx/)."),
    ] = None,
    at: Annotated[str | None, typer.Option(help="Appraisal time, ISO 8601 (default: now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Appraise EVIDENCE; print the verified claims, or the step that refused it (exit 3)."""
    with reporting():
        loaded_policy = load_policy(policy)
        expected = _parse_nonce(nonce)
        when = _parse_time(at)
        parsed = Evidence.from_json(evidence.read_bytes())
        source = DirectoryCollateral(collateral) if collateral else None
        try:
            result = appraise(
                parsed, policy=loaded_policy, expected_nonce=expected, now=when, collateral=source
            )
        except AttestationError as exc:
            raise refused(exc, as_json=as_json) from None
        if as_json:
            typer.echo(json.dumps({"verified": True, "result": result.to_json_dict()}, indent=2))
        else:
            _show(result)
