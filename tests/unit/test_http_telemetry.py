"""FastAPI's native telemetry is off in both services: no request span can be switched on.

A spy tracer provider stands in for one an operator (or, on a node, the borrower's
environment) might configure. FastAPI asks a configured provider for a tracer on each
request; an app made by ``service_app`` must never ask. The control case, a default app,
shows the spy would notice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace

from modellease._http import service_app
from modellease.custodian.app import create_app
from modellease.custodian.home import CustodianHome
from modellease.custodian.service import ControlPlane
from modellease.custodian.store import connect, default_url, migrate


class SpyTracerProvider(trace.TracerProvider):
    def __init__(self) -> None:
        self.asked = 0

    def get_tracer(self, *_args: Any, **_kwargs: Any) -> trace.Tracer:
        self.asked += 1
        return trace.NoOpTracer()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> SpyTracerProvider:
    provider = SpyTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    return provider


def with_health(app: FastAPI) -> FastAPI:

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


@pytest.fixture
def custodian_app(tmp_path: Path) -> Iterator[FastAPI]:
    home = CustodianHome.init(tmp_path / "home")
    unlocked = home.unlock()
    engine = connect(default_url(tmp_path))
    migrate(engine)
    try:
        yield create_app(ControlPlane(engine, signer=unlocked.signer, keys=unlocked.keys))
    finally:
        engine.dispose()


def test_a_default_app_would_ask_the_configured_provider(spy: SpyTracerProvider) -> None:
    with TestClient(with_health(FastAPI())) as http:
        assert http.get("/healthz").status_code == 200
    assert spy.asked > 0


def test_a_service_app_asks_no_provider(spy: SpyTracerProvider) -> None:
    with TestClient(with_health(service_app("test"))) as http:
        assert http.get("/healthz").status_code == 200
    assert spy.asked == 0


def test_the_custodian_asks_no_provider(spy: SpyTracerProvider, custodian_app: FastAPI) -> None:
    with TestClient(custodian_app) as http:
        assert http.get("/healthz").status_code == 200
        assert http.post("/v1/renew", content=b"{}").status_code >= 400  # refused, not traced
    assert spy.asked == 0
