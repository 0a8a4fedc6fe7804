"""``modellease custodian ...`` and ``modellease keys ...``: the custodian's home and identity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from modellease.cli._common import HomeOption, out, reporting
from modellease.custodian.home import CustodianHome, read_passphrase_file, resolve_home

custodian_app = typer.Typer(help="The custodian: home, identity and (later) the control plane.")
keys_app = typer.Typer(help="The custodian's keys.")


@custodian_app.command("init")
def init(
    home: HomeOption = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--passphrase-file",
            help="Derive the master key from this passphrase (scrypt) instead of a key file.",
        ),
    ] = None,
) -> None:
    """Create a custodian home: identity key, encrypted data-key store, config."""
    with reporting():
        path = resolve_home(home)
        passphrase = read_passphrase_file(passphrase_file) if passphrase_file else None
        created = CustodianHome.init(path, passphrase=passphrase)
        out.print(f"created custodian home {created.path}")
        out.print(f"custodian key  {created.public_key.hex()}")
        out.print(f"fingerprint    {created.fingerprint}")
        how = "passphrase (scrypt)" if created.uses_passphrase else "key file master.key (0600)"
        out.print(f"master key     {how}")


@keys_app.command("show")
def show(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the custodian public key and its fingerprint (needs no secret)."""
    with reporting():
        loaded = CustodianHome.load(resolve_home(home))
        if as_json:
            doc = {"public_key": loaded.public_key.hex(), "fingerprint": loaded.fingerprint}
            typer.echo(json.dumps(doc, indent=2))
        else:
            out.print(f"custodian key  {loaded.public_key.hex()}")
            out.print(f"fingerprint    {loaded.fingerprint}")
