"""The node's HTTP client: a refusal carries the status and the custodian's reason."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse

from modellease.enclave.wire import CustodianClient, CustodianRefusedError
from modellease.testing.server import serving


def custodian_that_refuses() -> FastAPI:
    """A server on loopback answering like a custodian, or like a broken proxy in front."""
    app = FastAPI()

    @app.post("/v1/leases/{lease_id}/nonce")
    async def nonce(lease_id: str) -> JSONResponse:
        body = {"reason": "unknown_lease", "detail": f"no lease {lease_id!r}"}
        return JSONResponse(body, status_code=404, media_type="application/problem+json")

    @app.post("/v1/renew")
    async def renew() -> PlainTextResponse:
        return PlainTextResponse("upstream timed out", status_code=504)

    return app


def test_refusals_carry_status_and_reason_even_from_a_proxy() -> None:
    with serving(custodian_that_refuses()) as url, httpx.Client(base_url=url) as http:
        wire = CustodianClient(http)
        with pytest.raises(CustodianRefusedError) as refused:
            wire.nonce("lease-9")
        assert (refused.value.status, refused.value.refusal) == (404, "unknown_lease")
        assert str(refused.value) == "404 unknown_lease: no lease 'lease-9'"
        with pytest.raises(CustodianRefusedError) as proxied:
            wire.renew(b"{}")
        assert (proxied.value.status, proxied.value.refusal) == (504, "unreadable")
        assert proxied.value.problem["detail"] == "upstream timed out"
