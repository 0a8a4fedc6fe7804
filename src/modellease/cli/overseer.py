"""``modellease overseer ...``: an overseer's own key, and the kill order signed with it.

An overseer (a regulator, an auditor) named on a lease can stop it without asking the
custodian's operators: the order is signed with the overseer's key, which the custodian
checks against the lease and stores and delivers as signed, so a node can verify it came
from the overseer. Overseers may only kill.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer

from modellease._hazmat import SigningKey
from modellease.cli._common import out, printable, reporting
from modellease.errors import InvalidInputError, StateError
from modellease.protocol import Order, format_timestamp, sign_message

overseer_app = typer.Typer(help="Overseers: a key of your own, and the off-switch it signs.")

SEED_SIZE = 32
HTTP_TIMEOUT_S = 30.0

KeyOption = Annotated[Path, typer.Option("--key", help="The overseer key file (hex seed).")]


class OverseerKeyError(InvalidInputError):
    """The overseer key file is missing, unreadable or not a 32-byte hex seed."""

    reason = "overseer_key"


def load_key(path: Path) -> SigningKey:
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise OverseerKeyError(f"cannot read an overseer key from {path}: {exc}") from None
    if len(seed) != SEED_SIZE:
        raise OverseerKeyError(f"{path} does not hold a 32-byte Ed25519 seed")
    return SigningKey.from_seed(seed)


@overseer_app.command("keygen")
def keygen(
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the key.")],
) -> None:
    """Create an overseer key (mode 0600) and print its public key for `lease create`."""
    with reporting():
        seed = secrets.token_bytes(SEED_SIZE)
        try:
            fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise StateError(f"{out_file} exists; refusing to overwrite a key") from None
        with os.fdopen(fd, "w") as f:
            f.write(seed.hex() + "\n")
        out.print(SigningKey.from_seed(seed).public_bytes().hex())


@overseer_app.command("kill")
def kill(
    custodian: Annotated[str, typer.Option(help="The custodian service's URL.")],
    lease: Annotated[str, typer.Argument(help="Lease id.")],
    reason: Annotated[str, typer.Option(help="Why (signed and recorded).")],
    key: KeyOption,
    instance: Annotated[str | None, typer.Option(help="One instance (default: the lease).")] = None,
) -> None:
    """Sign a kill order with the overseer key and hand it to the custodian."""
    with reporting():
        now = datetime.now(UTC)
        order = Order(
            order_id=f"order-{secrets.token_hex(8)}",
            lease_id=lease,
            seq=1,  # overseers' orders are outside the custodian's sequence: kill is terminal
            kind="kill",
            scope="instance" if instance else "lease",
            instance_id=instance,
            reason=reason,
            issued_at=format_timestamp(now),
        )
        signed = sign_message(order, signer=load_key(key))
        try:
            answer = httpx.post(
                f"{custodian.rstrip('/')}/v1/orders",
                content=signed.to_json(),
                headers={"content-type": "application/json"},
                timeout=HTTP_TIMEOUT_S,
            )
        except httpx.TransportError as exc:
            raise StateError(f"cannot reach the custodian at {custodian}: {exc}") from None
        if answer.status_code != httpx.codes.OK:
            is_json = answer.headers.get("content-type", "").endswith("json")
            problem = answer.json() if is_json else {}
            detail = printable(str(problem.get("detail", answer.text)))
            raise OrderRefusedError(
                f"the custodian refused the order ({answer.status_code} "
                f"{problem.get('reason', '')}): {detail}"
            )
        target = f"instance {instance}" if instance else f"lease {lease}"
        out.print(f"kill order {order.order_id} signed by {signed.key_id} accepted for {target}")


class OrderRefusedError(InvalidInputError):
    """The custodian refused the overseer's order (the reason is in the message)."""

    reason = "order_refused"
