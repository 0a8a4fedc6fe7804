"""A real custodian and a real enclave node on loopback, with a sealed model between them:
the test-side names for :mod:`modellease.testing.stage`, on the custodian of
``custodian_server`` (hand-moved clock, shared by the node: tests move time for both)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from modellease.custodian import auth, ledger
from modellease.custodian.sealing import seal_model_file
from modellease.enclave.boot import BootedNode
from modellease.enclave.config import NodeConfig
from modellease.testing import stage
from modellease.testing.stage import RunningNode, dev_policy
from tests.integration.custodian_server import Custodian

__all__ = ["RunningNode", "dev_policy"]


@dataclass
class Sealed:
    path: Path
    bundle_id: str


def seal(custodian: Custodian, model: bytes, tmp: Path, *, name: str, suffix: str) -> Sealed:
    """Seal ``model`` with the custodian's home; the plaintext file is removed."""
    source = tmp / f"model{suffix}"
    source.write_bytes(model)
    out = tmp / f"{name}.mlbundle"
    sealed = seal_model_file(custodian.stage.unlocked, source, out, name=name, version="1")
    source.unlink()
    return Sealed(path=out, bundle_id=sealed.manifest.bundle_id)


def node_config(custodian: Custodian, overseers: tuple[bytes, ...] = ()) -> NodeConfig:
    return stage.node_config(custodian.stage, overseers)


def lease_for(
    custodian: Custodian,
    sealed: Sealed,
    config: NodeConfig,
    lease_id: str = "lease-node",
    **terms: object,
) -> str:
    """A lease of ``sealed`` (100 requests in slices of 10 unless ``terms`` say otherwise)."""
    values: dict[str, object] = {"unit": ledger.Unit.REQUESTS, "budget": 100, "slice_size": 10}
    return stage.create_lease(
        custodian.stage, lease_id, sealed.bundle_id, config, **(values | terms)
    )


def boot_node(
    custodian: Custodian, sealed: Sealed, config: NodeConfig, lease_id: str
) -> BootedNode:
    return stage.boot_node(custodian.stage, config, lease_id, sealed.path)


@contextmanager
def running_node(
    custodian: Custodian, booted: BootedNode, *, renew: bool = True, tls: bool = False
) -> Iterator[RunningNode]:
    with stage.serve_node(custodian.stage, booted, renew=renew, tls=tls) as node:
        yield node


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


WAIT_S = 30.0  # generous: a correctness bound, not a performance claim
POLL_S = 0.01


def wait_until(condition: Callable[[], bool], *, within: float = WAIT_S) -> None:
    """Poll ``condition`` until it holds; fail the test if it does not within ``within``."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(POLL_S)
