"""A real custodian and a real enclave node on loopback, with a sealed model between them.

The custodian runs on the hand-moved clock of ``custodian_server``; the node reads the
same clock, so tests move time for both (grant expiry, dead man's switch) without sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from modellease.attestation import SimulatedAttester, runtime_measurement
from modellease.custodian import auth, ledger
from modellease.custodian.sealing import seal_model_file
from modellease.enclave.api import create_node_app
from modellease.enclave.boot import BootedNode, boot
from modellease.enclave.config import NodeConfig, render_config
from modellease.enclave.renewer import Renewer
from modellease.enclave.wire import CustodianClient
from modellease.testing.server import serving
from tests.integration.custodian_server import Custodian, lease_spec


@dataclass
class Sealed:
    path: Path
    bundle_id: str


def seal(custodian: Custodian, model: bytes, tmp: Path, *, name: str, suffix: str) -> Sealed:
    source = tmp / f"model{suffix}"
    source.write_bytes(model)
    out = tmp / f"{name}.mlbundle"
    sealed = seal_model_file(custodian.home.unlock(), source, out, name=name, version="1")
    source.unlink()
    return Sealed(path=out, bundle_id=sealed.manifest.bundle_id)


def node_config(custodian: Custodian, overseers: tuple[bytes, ...] = ()) -> NodeConfig:
    raw = render_config(
        custodian_url=custodian.url,
        custodian_key=custodian.home.public_key,
        overseer_keys=overseers,
    )
    return NodeConfig.from_bytes(raw)


def dev_policy_for(config: NodeConfig) -> dict[str, object]:
    """A development policy admitting the simulated node with exactly this configuration."""
    return {
        "allowed_tees": ["simulated"],
        "unsafe_allow_simulated": True,
        "simulated": {"measurement": [runtime_measurement(config.raw).hex()]},
    }


def admin_order(custodian: Custodian, lease_id: str, kind: str, reason: str) -> httpx.Response:
    """An operator's order through the admin API (which pushes it to connected nodes)."""
    token, _ = custodian.plane.create_token(
        role=auth.Role.OPERATOR, lease_id=None, now=custodian.clock()
    )
    with httpx.Client(base_url=custodian.url, timeout=10.0) as http:
        return http.post(
            f"/admin/v1/leases/{lease_id}/orders",
            json={"kind": kind, "reason": reason},
            headers={"authorization": f"Bearer {token}"},
        )


def lease_for(
    custodian: Custodian,
    sealed: Sealed,
    config: NodeConfig,
    lease_id: str = "lease-node",
    **extra: object,
) -> str:
    values: dict[str, object] = {"bundle_id": sealed.bundle_id, "policy": dev_policy_for(config)}
    values |= extra
    custodian.plane.create_lease(lease_spec(lease_id, **values), now=custodian.clock())
    return lease_id


def boot_node(
    custodian: Custodian, sealed: Sealed, config: NodeConfig, lease_id: str
) -> BootedNode:
    with httpx.Client(base_url=custodian.url, timeout=10.0) as http:
        return boot(
            config,
            lease_id=lease_id,
            bundle=sealed.path,
            attester=SimulatedAttester(runtime_measurement(config.raw)),
            custodian=CustodianClient(http),
            clock=custodian.clock,
        )


@dataclass
class RunningNode:
    url: str
    booted: BootedNode
    app: FastAPI

    @property
    def renewer(self) -> Renewer:
        renewers: list[Renewer] = self.app.state.context.renewers
        return renewers[0]


@contextmanager
def running_node(
    custodian: Custodian, booted: BootedNode, *, renew: bool = True
) -> Iterator[RunningNode]:
    """Serve ``booted`` on loopback; with ``renew``, its renewer runs (renewals, orders)."""
    http = httpx.Client(base_url=custodian.url, timeout=10.0)

    def renewer() -> Renewer:
        orders = httpx.AsyncClient(base_url=custodian.url)
        return Renewer(booted.runtime, CustodianClient(http), orders=orders, clock=custodian.clock)

    app = create_node_app(booted, clock=custodian.clock, renewer=renewer if renew else None)
    try:
        with serving(app, lifespan=True) as url:
            yield RunningNode(url=url, booted=booted, app=app)
    finally:
        http.close()
        booted.engine.close()


TTL = timedelta(seconds=30)
REQUESTS = ledger.Unit.REQUESTS
