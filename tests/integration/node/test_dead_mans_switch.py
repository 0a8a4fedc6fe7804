"""The dead man's switch with the custodian really gone: a node whose custodian stops
answering stops serving once its grant expires (within the TTL), and serves again only
after the custodian is back and has granted anew. Real clock, real servers, a 3 s TTL."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import httpx

from modellease.custodian.app import create_app
from modellease.custodian.home import CustodianHome
from modellease.custodian.ledger import Unit
from modellease.custodian.sealing import seal_model_file
from modellease.custodian.service import ControlPlane
from modellease.custodian.store import connect, migrate
from modellease.testing.digits import DigitsModel
from modellease.testing.server import free_port, serving
from modellease.testing.stage import (
    Stage,
    boot_node,
    create_lease,
    node_config,
    serve_node,
    utc_now,
)
from tests.integration.node_harness import wait_until

TTL = timedelta(seconds=3)


def first_status(http: httpx.Client, row: dict[str, object], wanted: int) -> httpx.Response:
    """Ask until the node answers ``wanted``; that answer."""
    answers: list[httpx.Response] = []

    def answered() -> bool:
        answers.append(http.post("/v1/infer", json=row))
        return answers[-1].status_code == wanted

    wait_until(answered)
    return answers[-1]


def test_a_node_cut_off_from_its_custodian_stops_and_resumes_only_with_a_new_grant(
    tmp_path: Path, digits_model: DigitsModel
) -> None:
    home = CustodianHome.init(tmp_path / "home")
    unlocked = home.unlock()
    store = f"sqlite+pysqlite:///{tmp_path / 'c.sqlite3'}"
    engine = connect(store)
    migrate(engine)
    plane = ControlPlane(engine, signer=unlocked.signer, keys=unlocked.keys)
    port = free_port()
    (tmp_path / "digits.onnx").write_bytes(digits_model.onnx)
    sealed = seal_model_file(
        unlocked, tmp_path / "digits.onnx", tmp_path / "d.mlbundle", name="d", version="1"
    )
    row = {"inputs": {"X": digits_model.test_inputs[:1].tolist()}}
    with ExitStack() as stack:
        first = stack.enter_context(ExitStack())
        url = first.enter_context(serving(create_app(plane), port=port))
        stage = Stage(
            home=home, unlocked=unlocked, plane=plane, url=url, store=store, clock=utc_now
        )
        config = node_config(stage)
        create_lease(
            stage,
            "cut-off",
            sealed.manifest.bundle_id,
            config,
            unit=Unit.REQUESTS,
            budget=1000,
            slice_size=100,
            heartbeat_ttl=TTL,
        )
        booted = boot_node(stage, config, "cut-off", tmp_path / "d.mlbundle")
        node = stack.enter_context(serve_node(stage, booted))
        http = stack.enter_context(httpx.Client(base_url=node.url))
        assert http.post("/v1/infer", json=row).status_code == 200

        first.close()  # the custodian is gone
        seq = booted.runtime.grant.seq
        refused = first_status(http, row, 503)
        assert refused.json()["reason"] == "grant_expired"
        assert not booted.engine.closed  # before the hard expiry the model stays loaded
        assert node.renewer.failures > 0

        stack.enter_context(serving(create_app(plane), port=port))  # back, same address
        first_status(http, row, 200)
        assert booted.runtime.grant.seq > seq
    engine.dispose()
