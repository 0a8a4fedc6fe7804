"""``modellease custodian ...`` and ``modellease keys ...``: the custodian's home and identity."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from modellease import logs
from modellease.cli._common import (
    HomeOption,
    PassphraseOption,
    err,
    out,
    reporting,
    unlock_home,
)
from modellease.custodian import audit, auth
from modellease.custodian.app import create_app
from modellease.custodian.home import CustodianHome, read_passphrase_file, resolve_home
from modellease.custodian.service import ControlPlane
from modellease.custodian.serving import listening_sockets, run_workers
from modellease.custodian.store import connect, default_url, migrate
from modellease.logs import LogFormat

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


EXPIRY_SWEEP_S = 5.0  # how often the service closes instances past their hard expiry


def _bootstrap_operator_token(engine: Engine, actor: str) -> str | None:
    """The first operator token, minted (and audited) only while no valid one exists."""
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        minted = auth.bootstrap_operator_token(session, now=now)
        if minted is None:
            return None
        token, row = minted
        audit.append(
            session,
            kind="token_created",
            actor=actor,
            lease_id=None,
            detail={"token_id": row.id, "role": row.role, "bootstrap": True},
            now=now,
        )
        return token


@custodian_app.command("serve")
def serve(
    home: HomeOption = None,
    passphrase_file: PassphraseOption = None,
    db: Annotated[
        str | None, typer.Option(help="Database URL (default: SQLite in the custodian home).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8750,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server processes (one core each).")
    ] = 1,
    log_format: Annotated[
        LogFormat, typer.Option(help="Logs on standard error: one JSON object per line, or text.")
    ] = LogFormat.JSON,
    access_log: Annotated[
        bool, typer.Option(help="Log a line per HTTP request (every heartbeat, too).")
    ] = True,
) -> None:
    """Run the custodian service: the node API (/v1) and the admin API (/admin/v1)."""
    logs.configure(fmt=log_format, access_log=access_log)
    with reporting():
        loaded, unlocked = unlock_home(home, passphrase_file)
        url = db or default_url(loaded.path)
        engine = connect(url)
        migrate(engine)
        plane = ControlPlane(engine, signer=unlocked.signer, keys=unlocked.keys)
        token = _bootstrap_operator_token(engine, plane.actor)
        if token is not None:
            err.print("first operator token (shown once, store it now):")
            err.print(token)
        sockets = listening_sockets(host, port, workers)
        engine.dispose()  # no connection may be shared with the forked workers

        def make_app() -> FastAPI:
            worker = ControlPlane(connect(url), signer=unlocked.signer, keys=unlocked.keys)
            return create_app(worker)

        def sweep(stop: threading.Event) -> None:
            while not stop.wait(EXPIRY_SWEEP_S):
                plane.expire(now=datetime.now(UTC))

        out.print(f"custodian {loaded.fingerprint} serving on http://{host}:{port}")
        try:
            run_workers(make_app, sockets, background=sweep)
        finally:
            for sock in sockets:
                sock.close()
            engine.dispose()
