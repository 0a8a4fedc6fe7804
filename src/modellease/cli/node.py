"""``modellease node ...``: the enclave node: its measured configuration, and serving."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import httpx
import typer
import uvicorn

from modellease import logs
from modellease.attestation import (
    Attester,
    GramineAttester,
    SimulatedAttester,
    TeeKind,
    TsmAttester,
    runtime_measurement,
)
from modellease.cli._common import HomeOption, err, out, reporting
from modellease.custodian.home import CustodianHome, resolve_home
from modellease.enclave.api import create_node_app
from modellease.enclave.boot import boot
from modellease.enclave.config import NodeConfig, render_config
from modellease.enclave.renewer import Renewer
from modellease.enclave.wire import CustodianClient
from modellease.errors import InvalidInputError, TransportError
from modellease.logs import LogFormat

node_app = typer.Typer(help="The enclave node: configuration and serving.")
log = logging.getLogger("modellease.node")

CUSTODIAN_TIMEOUT_S = 10.0


class Tee(StrEnum):
    SIMULATED = "simulated"
    SGX = "sgx"
    TDX = "tdx"
    SEV_SNP = "sev-snp"


def attester_for(tee: Tee, config: NodeConfig) -> Attester:
    """The TEE's evidence producer; ``simulated`` measures this package and the config."""
    if tee is Tee.SIMULATED:
        return SimulatedAttester(runtime_measurement(config.raw))
    if tee is Tee.SGX:
        return GramineAttester()
    return TsmAttester(TeeKind.TDX if tee is Tee.TDX else TeeKind.SEV_SNP)


@node_app.command("config")
def config(
    custodian: Annotated[str, typer.Option(help="The custodian's URL, as nodes reach it.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the configuration.")],
    home: HomeOption = None,
    overseer: Annotated[
        list[str] | None, typer.Option(help="An overseer's public key (hex); repeatable.")
    ] = None,
) -> None:
    """Write a node configuration pinning this custodian (and overseers); print its
    simulated-TEE measurement, for a development lease's policy."""
    with reporting():
        loaded = CustodianHome.load(resolve_home(home))
        try:
            overseers = tuple(bytes.fromhex(k) for k in overseer or [])
        except ValueError:
            raise InvalidInputError("an overseer key must be hex") from None
        raw = render_config(
            custodian_url=custodian, custodian_key=loaded.public_key, overseer_keys=overseers
        )
        out_file.write_bytes(raw)
        out.print(f"node configuration written to {out_file}")
        out.print(f"simulated measurement: {runtime_measurement(raw).hex()}")


@node_app.command("serve")
def serve(
    config_file: Annotated[
        Path, typer.Option("--config", help="The node configuration (part of the measurement).")
    ],
    lease: Annotated[str, typer.Option(help="The lease to enrol on.")],
    bundle: Annotated[Path, typer.Option(help="The sealed model bundle.")],
    tee: Annotated[Tee, typer.Option(help="The TEE producing evidence.")] = Tee.SIMULATED,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8760,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Inference threads (default: all cores).")
    ] = None,
    log_format: Annotated[
        LogFormat, typer.Option(help="Logs on standard error: one JSON object per line, or text.")
    ] = LogFormat.JSON,
    insecure_http: Annotated[
        bool,
        typer.Option(
            "--insecure-http",
            help="Serve plain HTTP instead of attested TLS: INSECURE, development only "
            "(anyone on the path reads prompts, and clients cannot verify the node).",
        ),
    ] = False,
) -> None:
    """Enrol on a lease (attested), open the bundle in memory, and serve it under the lease
    over HTTPS with the TLS key the evidence binds."""
    logs.configure(fmt=log_format)
    with reporting():
        node_config = NodeConfig.from_bytes(config_file.read_bytes())
        if tee is Tee.SIMULATED:
            err.print("WARNING: simulated TEE: INSECURE, for development only; evidence is fake")
        http = httpx.Client(base_url=node_config.custodian_url, timeout=CUSTODIAN_TIMEOUT_S)
        custodian = CustodianClient(http)
        try:
            booted = boot(
                node_config,
                lease_id=lease,
                bundle=bundle,
                attester=attester_for(tee, node_config),
                custodian=custodian,
                clock=lambda: datetime.now(UTC),
                threads=threads,
            )
        except httpx.HTTPError as exc:
            raise TransportError(
                f"cannot reach the custodian at {node_config.custodian_url}: {exc}"
            ) from None

        def renewer() -> Renewer:
            orders = httpx.AsyncClient(base_url=node_config.custodian_url)
            return Renewer(
                booted.runtime, custodian, orders=orders, clock=lambda: datetime.now(UTC)
            )

        app = create_node_app(booted, renewer=renewer)
        scheme = "http" if insecure_http else "https"
        if insecure_http:
            err.print(
                "WARNING: --insecure-http: plain HTTP, INSECURE, for development only: "
                "prompts and answers cross the network in clear, and no client can verify "
                "this node"
            )
            log.warning("serving plain HTTP (--insecure-http): insecure, development only")
        out.print(
            f"node {booted.runtime.instance_id} serving {booted.manifest.model.name} "
            f"on {scheme}://{host}:{port}"
        )
        tls = None if insecure_http else booted.tls.server_context
        try:
            uvicorn.run(
                app,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                ssl_context_factory=(lambda _config, _default: tls()) if tls else None,
            )
        finally:
            booted.engine.close()  # the model goes with the process, whatever ended it
