"""The custodian's HTTP service (FastAPI): the node API under ``/v1``.

Rules:

* handlers are thin: parse with the strict wire models, call :class:`ControlPlane` (in the
  thread pool: database work never blocks the event loop) with the time from the injected
  clock, serialise the answer; no decision is taken here. Renewals go through a
  :class:`~modellease.custodian.batcher.RenewalBatcher`: many reports per commit;
* every refusal is ``application/problem+json`` (RFC 9457) with the error's stable
  ``reason``; bad input is 400/401/403/404/409/429-class, never 500;
* request bodies are capped before parsing (``MAX_BODY_SIZE``);
* ``POST /v1/orders`` takes a kill order signed by one of the lease's overseers with its own
  key (no bearer token: the signature is the authentication);
* orders are pushed to connected nodes at once (:mod:`~modellease.custodian.push`; orders
  accepted by another worker process within ``ORDER_POLL_S``) over server-sent events
  (``GET /v1/instances/{id}/orders``) and are in every renewal answer as well, so a node
  that missed the push learns of a kill at its next renewal at the latest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from modellease._http import malformed, problem, read_body, service_app
from modellease.custodian._http import status_for
from modellease.custodian.admin_api import admin_router
from modellease.custodian.batcher import RenewalBatcher
from modellease.custodian.push import OrderBroadcaster
from modellease.custodian.renewal import RenewalRequest
from modellease.custodian.service import ControlPlane
from modellease.errors import AttestationError, ModelleaseError
from modellease.protocol import EnrolRequest, SignedDocument

MAX_BODY_SIZE = 8 * 1024 * 1024  # enrolment evidence with DCAP collateral stays far below
ORDER_STREAM_KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from timing out

Clock = Callable[[], datetime]


def create_app(plane: ControlPlane, *, clock: Clock | None = None) -> FastAPI:
    """The custodian app over ``plane``; ``clock`` defaults to the system's UTC time."""
    now = clock or (lambda: datetime.now(UTC))
    app = service_app("modellease custodian")
    orders = OrderBroadcaster(plane.signed_orders)
    renewals = RenewalBatcher(plane)
    app.state.plane = plane
    app.state.orders = orders

    @app.exception_handler(ModelleaseError)
    async def _refused(_request: Request, exc: ModelleaseError) -> JSONResponse:
        step = exc.step if isinstance(exc, AttestationError) else None
        extra = {"step": step} if step else {}
        return problem(status_for(exc), exc.reason, str(exc), **extra)

    @app.exception_handler(ValidationError)
    async def _malformed(_request: Request, exc: ValidationError) -> JSONResponse:
        return malformed(exc)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/leases/{lease_id}/nonce")
    async def nonce(lease_id: str) -> Response:
        answer = await run_in_threadpool(plane.issue_nonce, lease_id, now=now())
        return Response(answer.model_dump_json(), media_type="application/json")

    @app.post("/v1/enrol")
    async def enrol(request: Request) -> Response:
        parsed = EnrolRequest.model_validate_json(await read_body(request, limit=MAX_BODY_SIZE))
        answer = await run_in_threadpool(plane.enrol, parsed, now=now())
        return Response(answer.model_dump_json(), media_type="application/json")

    async def renew(request: Request) -> Response:
        raw = await read_body(request, limit=MAX_BODY_SIZE)
        answer = await renewals.renew(RenewalRequest.received(raw, now()))
        return Response(answer, media_type="application/json")  # as stored: retries get these

    # The heartbeat of every node: a plain route, without FastAPI's per-request dependency
    # solving (it takes the raw request anyway); the app's error handlers apply as to all.
    app.add_route("/v1/renew", renew, methods=["POST"])

    @app.post("/v1/extensions")
    async def extension(request: Request) -> Response:
        signed = SignedDocument.from_json(await read_body(request, limit=MAX_BODY_SIZE))
        request_id = await run_in_threadpool(plane.request_extension_signed, signed, now=now())
        return JSONResponse({"request_id": request_id})

    @app.post("/v1/orders")
    async def overseer_order(request: Request) -> JSONResponse:
        signed = SignedDocument.from_json(await read_body(request, limit=MAX_BODY_SIZE))
        order = await run_in_threadpool(plane.accept_overseer_order, signed, now=now())
        publish_order(order.lease_id, signed)
        return JSONResponse({"order_id": order.order_id, "kind": order.kind})

    @app.get("/v1/leases/{lease_id}/orders")
    async def order_stream(lease_id: str, request: Request) -> StreamingResponse:
        queue = await orders.subscribe(lease_id)

        async def events() -> AsyncIterator[str]:
            try:
                yield ": connected\n\n"
                while not await request.is_disconnected():
                    try:
                        signed = await asyncio.wait_for(queue.get(), ORDER_STREAM_KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"event: order\ndata: {signed}\n\n"
            finally:
                orders.unsubscribe(lease_id, queue)

        return StreamingResponse(events(), media_type="text/event-stream")

    def publish_order(lease_id: str, signed: SignedDocument) -> None:
        orders.publish(lease_id, signed.to_json().decode())  # canonical, one line

    app.state.publish_order = publish_order
    app.include_router(admin_router(plane, clock=now, publish_order=publish_order))
    return app
