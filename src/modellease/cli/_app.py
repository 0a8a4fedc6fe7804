"""The root ``modellease`` application."""

from __future__ import annotations

import typer

from modellease.cli.attest import attest_app
from modellease.cli.audit import audit_app
from modellease.cli.bundle import inspect, seal, unseal
from modellease.cli.custodian import custodian_app, keys_app
from modellease.cli.demo import demo
from modellease.cli.lease import lease_app, token_app, usage
from modellease.cli.node import node_app
from modellease.cli.overseer import overseer_app
from modellease.cli.receipt import receipt_app
from modellease.cli.verify import verify

app = typer.Typer(
    name="modellease",
    help="Lease AI models under hardware-enforced rules.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(custodian_app, name="custodian")
app.add_typer(keys_app, name="keys")
app.add_typer(attest_app, name="attest")
app.add_typer(audit_app, name="audit")
app.add_typer(lease_app, name="lease")
app.add_typer(token_app, name="token")
app.add_typer(overseer_app, name="overseer")
app.add_typer(node_app, name="node")
app.add_typer(receipt_app, name="receipt")
app.command()(seal)
app.command()(inspect)
app.command()(unseal)
app.command()(demo)
app.command()(usage)
app.command()(verify)


def main() -> None:
    app()
