"""A real custodian and real enclave nodes on loopback, for the demo, tests and benchmarks.

Nothing here is simulated except the TEE (``SimulatedAttester``: INSECURE, labelled so in
everything it produces): the custodian is the real service over a real store, the nodes
boot through :func:`modellease.enclave.boot.boot` and serve the real node app with its
renewer. A ``clock`` may be shared by custodian and nodes so tests move time by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from modellease.attestation import SimulatedAttester, runtime_measurement
from modellease.custodian.app import create_app
from modellease.custodian.home import CustodianHome, UnlockedHome
from modellease.custodian.service import ControlPlane, LeaseSpec
from modellease.custodian.store import connect, default_url, migrate
from modellease.enclave.api import create_node_app
from modellease.enclave.boot import BootedNode, boot
from modellease.enclave.config import NodeConfig, render_config
from modellease.enclave.renewer import Renewer
from modellease.enclave.wire import CustodianClient
from modellease.testing.server import serving

Clock = Callable[[], datetime]
CUSTODIAN_TIMEOUT_S = 10.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Stage:
    """The custodian's side, running: its home, control plane, service URL and store."""

    home: CustodianHome
    unlocked: UnlockedHome
    plane: ControlPlane
    url: str
    store: str
    clock: Clock


@contextmanager
def custodian_stage(
    home_dir: Path, *, store: str | None = None, clock: Clock = utc_now
) -> Iterator[Stage]:
    """A new custodian home in ``home_dir`` and its service on loopback."""
    home = CustodianHome.init(home_dir)
    unlocked = home.unlock()
    url = store or default_url(home.path)
    engine = connect(url)
    migrate(engine)
    plane = ControlPlane(engine, signer=unlocked.signer, keys=unlocked.keys)
    try:
        with serving(create_app(plane, clock=clock)) as service:
            yield Stage(
                home=home, unlocked=unlocked, plane=plane, url=service, store=url, clock=clock
            )
    finally:
        engine.dispose()


def node_config(stage: Stage, overseers: tuple[bytes, ...] = ()) -> NodeConfig:
    """A node configuration pinning this custodian (and ``overseers``)."""
    raw = render_config(
        custodian_url=stage.url, custodian_key=stage.home.public_key, overseer_keys=overseers
    )
    return NodeConfig.from_bytes(raw)


def dev_policy(config: NodeConfig) -> dict[str, object]:
    """A development policy admitting the simulated node with exactly this configuration."""
    return {
        "allowed_tees": ["simulated"],
        "unsafe_allow_simulated": True,
        "simulated": {"measurement": [runtime_measurement(config.raw).hex()]},
    }


def create_lease(
    stage: Stage, lease_id: str, bundle_id: str, config: NodeConfig, **terms: object
) -> str:
    """A lease of ``bundle_id`` for simulated nodes with ``config``; ``terms`` override the
    defaults (TTL 30 s, hard expiry 60 s after it, ends in 30 days)."""
    values: dict[str, object] = {
        "lease_id": lease_id,
        "bundle_id": bundle_id,
        "heartbeat_ttl": timedelta(seconds=30),
        "hard_expiry": timedelta(seconds=60),
        "ends_at": stage.clock() + timedelta(days=30),
        "policy": dev_policy(config),
    }
    stage.plane.create_lease(LeaseSpec(**(values | terms)), now=stage.clock())  # type: ignore[arg-type]
    return lease_id


def boot_node(stage: Stage, config: NodeConfig, lease_id: str, bundle: Path) -> BootedNode:
    """Boot a simulated-TEE node on ``lease_id`` (enrolled, model loaded)."""
    with httpx.Client(base_url=stage.url, timeout=CUSTODIAN_TIMEOUT_S) as http:
        return boot(
            config,
            lease_id=lease_id,
            bundle=bundle,
            attester=SimulatedAttester(runtime_measurement(config.raw)),
            custodian=CustodianClient(http),
            clock=stage.clock,
        )


@dataclass
class RunningNode:
    url: str
    booted: BootedNode
    renewers: list[Renewer]

    @property
    def renewer(self) -> Renewer:
        return self.renewers[0]


@contextmanager
def serve_node(
    stage: Stage, booted: BootedNode, *, renew: bool = True, tls: bool = False
) -> Iterator[RunningNode]:
    """Serve ``booted`` on loopback; with ``renew`` its renewer runs (renewals, orders);
    with ``tls`` over HTTPS with the node's attested key. The engine is closed when the
    block ends."""
    http = httpx.Client(base_url=stage.url, timeout=CUSTODIAN_TIMEOUT_S)

    def renewer() -> Renewer:
        orders = httpx.AsyncClient(base_url=stage.url)
        return Renewer(booted.runtime, CustodianClient(http), orders=orders, clock=stage.clock)

    app = create_node_app(booted, clock=stage.clock, renewer=renewer if renew else None)
    try:
        context = booted.tls.server_context if tls else None
        with serving(app, lifespan=True, tls=context) as url:
            yield RunningNode(url=url, booted=booted, renewers=app.state.context.renewers)
    finally:
        http.close()
        booted.engine.close()
