"""The renewer against a real custodian: it files an extension when the budget runs dry,
takes the next slice once approved, retries with backoff while the custodian is away, and
refuses orders nobody trusted signed."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from modellease._hazmat import SigningKey
from modellease.custodian.store import ExtensionRequestRow, connect
from modellease.enclave import renewer as renewer_module
from modellease.enclave.renewer import Renewer, renewal_interval
from modellease.enclave.runtime import NodeRuntime
from modellease.enclave.wire import CustodianClient
from modellease.protocol import Grant, Order, RenewResponse, format_timestamp, sign_message
from modellease.testing.digits import DigitsModel
from modellease.testing.server import free_port, serving
from tests.integration.custodian_server import Custodian
from tests.integration.node_harness import (
    POLL_S,
    Sealed,
    boot_node,
    lease_for,
    node_config,
    running_node,
    wait_until,
)


def pending_extensions(custodian: Custodian) -> list[ExtensionRequestRow]:
    engine = connect(custodian.engine_url)
    with Session(engine) as s:
        rows = list(
            s.scalars(sa.select(ExtensionRequestRow).where(ExtensionRequestRow.status == "pending"))
        )
    engine.dispose()
    return rows


def test_an_exhausted_budget_files_one_extension_and_serving_resumes_once_approved(
    custodian: Custodian, sealed: Sealed, digits_model: DigitsModel
) -> None:
    config = node_config(custodian)
    lease = lease_for(custodian, sealed, config, budget=10, slice_size=10)
    booted = boot_node(custodian, sealed, config, lease)
    row = {"inputs": {"X": digits_model.test_inputs[:1].tolist()}}
    with running_node(custodian, booted) as node, httpx.Client(base_url=node.url) as http:
        for _ in range(10):
            assert http.post("/v1/infer", json=row).status_code == 200
        refused = http.post("/v1/infer", json=row)
        assert (refused.status_code, refused.json()["reason"]) == (429, "allowance_exhausted")
        wait_until(lambda: len(pending_extensions(custodian)) == 1)
        request = pending_extensions(custodian)[0]
        assert (request.instance_id, request.units) == (booted.runtime.instance_id, 10)
        custodian.plane.decide_extension(request.id, approve=True, now=custodian.clock())
        node.renewer.poke()
        wait_until(lambda: http.post("/v1/infer", json=row).status_code == 200)
    assert booted.runtime.meter.usage().allowance == 20
    assert pending_extensions(custodian) == []


def test_renewals_back_off_while_the_custodian_is_away_and_nothing_is_lost(
    custodian: Custodian, sealed: Sealed, caplog: pytest.LogCaptureFixture
) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    runtime = booted.runtime
    nowhere = f"http://127.0.0.1:{free_port()}"

    async def scenario() -> Renewer:
        with httpx.Client(base_url=nowhere, timeout=1.0) as http:
            async with httpx.AsyncClient(base_url=nowhere, timeout=1.0) as orders:
                renewer = Renewer(
                    runtime, CustodianClient(http), orders=orders, clock=custodian.clock
                )
                renewer.start()
                renewer.poke()
                while renewer.failures < 3:
                    await asyncio.sleep(POLL_S)
                await renewer.stop()
                return renewer

    with caplog.at_level(logging.WARNING, logger="modellease.node"):
        renewer = asyncio.run(scenario())
    assert renewer.renewals == 0
    assert "renewal failed" in caplog.text
    assert "order stream lost" in caplog.text
    unanswered = runtime.report(now=custodian.clock())
    assert unanswered.to_json() == runtime.report(now=custodian.clock()).to_json()
    with httpx.Client(base_url=custodian.url) as http:  # the custodian is back: same report
        answer = CustodianClient(http).renew(unanswered.to_json())
    runtime.answered(answer, now=custodian.clock())
    assert runtime.chain.seq == 1


def test_an_order_signed_by_a_stranger_is_refused_and_changes_nothing(
    custodian: Custodian, sealed: Sealed, caplog: pytest.LogCaptureFixture
) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    forged = Order(
        order_id="forged-1",
        lease_id="lease-node",
        seq=1,
        kind="kill",
        scope="lease",
        reason="not the custodian",
        issued_at=format_timestamp(custodian.clock()),
    )
    signed = sign_message(forged, signer=SigningKey.generate())
    with running_node(custodian, booted) as node, caplog.at_level(logging.WARNING):
        node.renewer._take_order(signed.to_json())
        assert not booted.runtime.keeper.killed
        assert not booted.engine.closed
    assert "order refused" in caplog.text


def test_the_renewal_interval_is_a_third_of_the_grant(custodian: Custodian, sealed: Sealed) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    assert renewal_interval(booted.runtime) == pytest.approx(10.0)


def meddling_proxy(upstream: str, *, forge: bool, refuse_extensions: bool) -> FastAPI:
    """A man in the middle on the custodian's path: it forwards renewals, optionally swapping
    the grant for one a stranger signed (with more allowance), and may refuse extensions."""
    app = FastAPI()
    stranger = SigningKey.generate()

    @app.post("/v1/renew")
    async def renew(request: Request) -> Response:
        async with httpx.AsyncClient(base_url=upstream) as http:
            real = await http.post("/v1/renew", content=await request.body())
        answer = RenewResponse.model_validate_json(real.content)
        if forge and answer.grant is not None:
            fields = json.loads(answer.grant.payload)
            fields["allowance"] = str(int(fields["allowance"]) + 1000)
            forged = sign_message(Grant.model_validate(fields), signer=stranger)
            answer = RenewResponse(grant=forged, orders=answer.orders)
        return Response(answer.model_dump_json(), media_type="application/json")

    @app.post("/v1/extensions")
    async def extensions() -> JSONResponse:
        if refuse_extensions:
            return JSONResponse({"reason": "unavailable", "detail": "down"}, status_code=503)
        raise AssertionError("not used")

    return app


def renew_through(runtime: NodeRuntime, proxy: str, custodian: Custodian) -> Renewer:
    async def once() -> Renewer:
        with httpx.Client(base_url=proxy, timeout=10.0) as http:
            renewer = Renewer(
                runtime,
                CustodianClient(http),
                orders=httpx.AsyncClient(base_url=custodian.url),
                clock=custodian.clock,
            )
            assert await renewer.renew_once()
            await renewer.stop()
            return renewer

    return asyncio.run(once())


def test_a_grant_forged_on_the_way_is_refused_and_the_node_keeps_its_own(
    custodian: Custodian, sealed: Sealed, caplog: pytest.LogCaptureFixture
) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    runtime = booted.runtime
    with (
        serving(meddling_proxy(custodian.url, forge=True, refuse_extensions=False)) as proxy,
        caplog.at_level(logging.WARNING, logger="modellease.node"),
    ):
        renewer = renew_through(runtime, proxy, custodian)
    assert renewer.renewals == 2  # the renewal, and the final report at stop
    assert "custodian answer refused" in caplog.text
    assert runtime.grant.seq == 1
    assert runtime.meter.usage().allowance == 10


def test_a_refused_extension_request_is_logged_and_changes_nothing(
    custodian: Custodian, sealed: Sealed, caplog: pytest.LogCaptureFixture
) -> None:
    config = node_config(custodian)
    lease = lease_for(custodian, sealed, config, budget=10, slice_size=10)
    runtime = boot_node(custodian, sealed, config, lease).runtime
    runtime.finish(runtime.begin(10, now=custodian.clock()), units=10)
    with (
        serving(meddling_proxy(custodian.url, forge=False, refuse_extensions=True)) as proxy,
        caplog.at_level(logging.WARNING, logger="modellease.node"),
    ):
        renew_through(runtime, proxy, custodian)
    assert "extension request failed" in caplog.text
    assert pending_extensions(custodian) == []
    assert runtime.extension_request(now=custodian.clock()) is None  # asked once already


def test_an_order_seen_twice_is_applied_once(custodian: Custodian, sealed: Sealed) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    pause = custodian.plane.order(
        lease_id="lease-node",
        kind="pause",
        instance_id=None,
        reason="maintenance",
        now=custodian.clock(),
    )
    with running_node(custodian, booted) as node:
        node.renewer._take_order(pause.to_json())
        node.renewer._take_order(pause.to_json())
        assert node.renewer.orders_received == 1
        assert booted.runtime.keeper.paused


def test_a_shutdown_waits_for_the_final_report_only_so_long(
    custodian: Custodian,
    sealed: Sealed,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = node_config(custodian)
    runtime = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config)).runtime
    slow = FastAPI()

    @slow.post("/v1/renew")
    async def renew() -> JSONResponse:
        await asyncio.sleep(2.0)
        return JSONResponse({"reason": "late", "detail": "too late"}, status_code=503)

    monkeypatch.setattr(renewer_module, "FINAL_REPORT_TIMEOUT_S", 0.2)

    async def shutdown(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10.0) as http:
            renewer = Renewer(
                runtime, CustodianClient(http), orders=httpx.AsyncClient(), clock=custodian.clock
            )
            await renewer.stop()

    with serving(slow) as url, caplog.at_level(logging.WARNING, logger="modellease.node"):
        asyncio.run(shutdown(url))
    assert "final usage report timed out" in caplog.text
