"""``modellease verify URL``: what a node proves to a consumer, before any prompt is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from modellease.attestation import load_policy
from modellease.cli._common import err, out, printable, refused, reporting
from modellease.client import VerifiedNode, verify_node
from modellease.errors import InvalidInputError
from modellease.keys import custodian_key_from_hex


def verify(
    url: Annotated[str, typer.Argument(help="The node's https:// URL.")],
    policy: Annotated[Path, typer.Option(help="Your appraisal policy (.toml or .json).")],
    custodian: Annotated[
        list[str],
        typer.Option(help="A custodian public key (hex) you trust to sign models; repeatable."),
    ],
    expect_model: Annotated[
        str | None, typer.Option(help="The SHA-256 (hex) of the model you expect.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Verify the node at URL: its TEE evidence (fresh nonce) against your policy, its TLS
    key, its model's custodian signature. Prints what it proved, or the first check that
    failed (exit 3)."""
    with reporting():
        loaded = load_policy(policy)
        try:
            trusted = [custodian_key_from_hex(key) for key in custodian]
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--custodian") from None
        try:
            node = verify_node(
                url, policy=loaded, trusted_custodians=trusted, expect_model_sha256=expect_model
            )
        except InvalidInputError as exc:
            raise refused(exc, as_json=as_json) from None
        if as_json:
            typer.echo(json.dumps({"verified": True, "node": node.summary()}, indent=2))
        else:
            _show(node)


def _show(node: VerifiedNode) -> None:
    if node.insecure:
        err.print("WARNING: simulated TEE: this node proved NOTHING (development only)")
    table = Table(title=f"verified: {node.url}", show_header=False)
    table.add_column("fact", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("TEE", node.tee.value + (" (INSECURE)" if node.insecure else ""))
    for name, value in sorted(node.measurements.items()):
        table.add_row(name, Text(printable(str(value))))
    table.add_row("TCB status", str(node.tcb_status))
    table.add_row("model", Text(printable(f"{node.model_name} {node.model_version}")))
    table.add_row("model sha256", node.model_sha256)
    table.add_row("signed by custodian", node.custodian_public_key)
    table.add_row("lease", Text(printable(node.lease_id)))
    table.add_row("instance", Text(printable(node.instance_id)))
    table.add_row("status", Text(printable(node.status)))
    table.add_row("TLS key sha256", node.tls_public_key_sha256)
    table.add_row("receipt key", node.signing_public_key.hex())
    out.print(table)
