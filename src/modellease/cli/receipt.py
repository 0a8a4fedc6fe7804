"""``modellease receipt verify``: check a node's receipt offline, from its saved proof."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from modellease.cli._common import err, out, reporting
from modellease.client.receipts import ReceiptSubject, check_receipt
from modellease.protocol.receipts import ReceiptProof

receipt_app = typer.Typer(help="Per-response receipts signed by nodes.")


@receipt_app.command("verify")
def verify(
    receipt: Annotated[
        Path,
        typer.Argument(
            help="The receipt's proof: what check_response returned as proof.to_json()."
        ),
    ],
    node: Annotated[
        Path, typer.Option(help="What `modellease verify URL --json` printed about the node.")
    ],
    request: Annotated[
        Path | None, typer.Option(help="The exact request body sent (checked if given).")
    ] = None,
    response: Annotated[
        Path | None, typer.Option(help="The exact response body received (checked if given).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check RECEIPT's proof against a verified node: a batch signed by its key covers the
    receipt, which is about its lease, instance and model, and about the request and
    response bodies if given. Prints the receipt, or why it is refused (exit 3)."""
    with reporting():
        subject = ReceiptSubject.from_summary(json.loads(node.read_text()))
        checked = check_receipt(
            subject,
            ReceiptProof.from_json(receipt.read_bytes().strip()),
            request=request.read_bytes() if request else None,
            response=response.read_bytes() if response else None,
        )
        fields = checked.model_dump(mode="json")
        if subject.insecure:
            err.print("WARNING: simulated TEE: this node's receipts prove NOTHING")
        if as_json:
            document = {
                "valid": True,
                "insecure": subject.insecure,
                "request_checked": request is not None,
                "response_checked": response is not None,
                "receipt": fields,
            }
            typer.echo(json.dumps(document, indent=2))
            return
        table = Table(title="receipt valid", show_header=False)
        table.add_column("field", no_wrap=True)
        table.add_column("value", overflow="fold")
        for name, value in fields.items():
            table.add_row(name, str(value))
        table.add_row("request body", "checked" if request else "not given")
        table.add_row("response body", "checked" if response else "not given")
        out.print(table)
