"""A real custodian server on loopback (uvicorn in a thread) over a real store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from modellease.attestation import runtime_measurement
from modellease.custodian import ledger
from modellease.custodian.home import CustodianHome
from modellease.custodian.service import ControlPlane, LeaseSpec
from modellease.testing.node import DEFAULT_CONFIG
from modellease.testing.stage import Stage, custodian_stage

BUNDLE_ID = "ab" * 16


class Clock:
    """A clock the tests move by hand: the server reads it, nobody sleeps."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Custodian:
    url: str
    plane: ControlPlane
    home: CustodianHome
    clock: Clock
    engine_url: str
    stage: Stage


def dev_policy(config: bytes = DEFAULT_CONFIG) -> dict[str, object]:
    return {
        "allowed_tees": ["simulated"],
        "unsafe_allow_simulated": True,
        "simulated": {"measurement": [runtime_measurement(config).hex()]},
    }


def lease_spec(lease_id: str = "lease-1", **extra: object) -> LeaseSpec:
    values: dict[str, object] = {
        "lease_id": lease_id,
        "bundle_id": BUNDLE_ID,
        "unit": ledger.Unit.REQUESTS,
        "budget": 100,
        "slice_size": 10,
        "heartbeat_ttl": timedelta(seconds=30),
        "hard_expiry": timedelta(seconds=60),
        "ends_at": datetime(2027, 1, 1, tzinfo=UTC),
        "policy": dev_policy(),
    }
    return LeaseSpec(**(values | extra))  # type: ignore[arg-type]


@contextmanager
def running_custodian(tmp: Path, store_url: str) -> Iterator[Custodian]:
    clock = Clock(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    with custodian_stage(tmp / "home", store=store_url, clock=clock) as stage:
        stage.unlocked.keys.put(BUNDLE_ID, b"\x07" * 32)  # type: ignore[arg-type]
        yield Custodian(
            url=stage.url,
            plane=stage.plane,
            home=stage.home,
            clock=clock,
            engine_url=store_url,
            stage=stage,
        )


def client(custodian: Custodian) -> httpx.Client:
    return httpx.Client(base_url=custodian.url, timeout=10.0)
