"""The node's HTTP service (FastAPI): inference, transparency, health and metrics.

Rules:

* every inference goes admission → reservation of its maximum cost → work → settlement of
  its real cost (:class:`~modellease.enclave.runtime.NodeRuntime`); a refused request never
  starts, and a request that fails or is cancelled is charged only for what ran. Routes per
  engine: :mod:`~modellease.enclave.api_tensors` (``/v1/infer``) and
  :mod:`~modellease.enclave.api_language` (OpenAI-compatible);
* refusals are ``application/problem+json`` with a stable ``reason``: 400 malformed or
  invalid input, 404 ``model_not_found``, 413 too large, 429 ``allowance_exhausted``, 503
  with the lease keeper's reason (``no_grant``, ``grant_expired``, ``paused``, ``expired``)
  or ``engine_stopped``, 410 ``killed``;
* nothing from a prompt or an output is logged or counted, only token counts;
* ``GET /attestation`` gives what a consumer verifies before sending anything: evidence
  (fresh and bound to the caller's ``nonce`` if one is given, else the enrolment's), the
  signed bundle manifest, lease, instance and status; ``/healthz`` is 200 only while the
  node serves; ``/metrics`` is Prometheus text, counts only;
* every answer carries its receipt (a header; a stream's last comment line);
  ``GET /v1/receipts/{index}`` gives the signed batch that covers receipt ``index`` and
  its inclusion path (404 ``receipt_not_found`` if it was never issued or is no longer
  kept). Receipts are signed in a batch every :data:`RECEIPT_BATCH_SECONDS`, on
  shutdown, and at once when a proof is asked for;
* the renewer (if given) and the receipt signer start and stop with the app (ASGI lifespan).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from modellease._http import malformed, problem, service_app
from modellease.enclave.api_language import ModelNotFoundError, add_language_routes
from modellease.enclave.api_tensors import add_tensor_routes
from modellease.enclave.boot import BootedNode
from modellease.enclave.engines.onnx import OnnxEngine
from modellease.enclave.engines.stopped import EngineStoppedError
from modellease.enclave.meter import AllowanceExhaustedError
from modellease.enclave.metrics import metrics_text
from modellease.enclave.receipt_log import ReceiptNotKeptError
from modellease.enclave.renewer import Renewer
from modellease.enclave.runtime import ServiceRefusedError
from modellease.enclave.serving_context import Clock, ServingContext
from modellease.errors import InvalidInputError, LimitExceededError, ModelleaseError
from modellease.keys import Nonce

log = logging.getLogger("modellease.node")
_NONCE_HEX = re.compile(r"[0-9a-f]{64}")
_INDEX = re.compile(r"0|[1-9][0-9]{0,18}")
RECEIPT_BATCH_SECONDS = 0.05


def status_of(exc: ModelleaseError) -> tuple[int, str]:
    """The HTTP status and reason of a refusal."""
    if isinstance(exc, ServiceRefusedError):
        return exc.status, exc.refusal
    if isinstance(exc, AllowanceExhaustedError):
        status = 429
    elif isinstance(exc, ModelNotFoundError | ReceiptNotKeptError):
        status = 404
    elif isinstance(exc, EngineStoppedError):
        status = 503
    elif isinstance(exc, LimitExceededError):
        status = 413
    elif isinstance(exc, InvalidInputError):
        status = 400
    else:
        status = 500
    return status, exc.reason


def create_node_app(
    node: BootedNode,
    *,
    clock: Clock | None = None,
    renewer: Callable[[], Renewer] | None = None,
) -> FastAPI:
    """The node's app; ``renewer`` makes the renewer that runs with it (none: no renewals)."""
    ctx = ServingContext(node=node, now=clock or (lambda: datetime.now(UTC)))

    receipts = ctx.runtime.receipts

    async def sign_receipts() -> None:
        while True:
            await asyncio.sleep(RECEIPT_BATCH_SECONDS)
            try:
                receipts.seal(ctx.now())
            except Exception:  # the receipts stay pending: the next period (or a proof) signs
                log.exception("receipt batch not signed")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if renewer is not None:
            ctx.renewers.append(renewer())
            ctx.renewers[0].start()
        signer = asyncio.create_task(sign_receipts())
        try:
            yield
        finally:
            signer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await signer
            receipts.seal(ctx.now())
            for running in ctx.renewers:
                await running.stop()

    app = service_app("modellease node", lifespan=lifespan)
    app.state.context = ctx

    @app.exception_handler(ModelleaseError)
    async def _refused(_request: Request, exc: ModelleaseError) -> JSONResponse:
        status, reason = status_of(exc)
        return problem(status, reason, str(exc))

    @app.exception_handler(ValidationError)
    async def _malformed(_request: Request, exc: ValidationError) -> JSONResponse:
        return malformed(exc)

    # Inference routes first: routes are matched in order, and each one passed costs time.
    if isinstance(node.engine, OnnxEngine):
        add_tensor_routes(app, ctx, node.engine)
    else:
        add_language_routes(app, ctx, node.engine)

    @app.get("/v1/receipts/{index}")
    async def receipt_proof(index: str) -> JSONResponse:
        if _INDEX.fullmatch(index) is None:
            raise InvalidInputError("a receipt's index is a decimal number")
        batch, path = receipts.proof(int(index), ctx.now())
        return JSONResponse(
            {"batch": json.loads(batch.to_json()), "path": [node.hex() for node in path]}
        )

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        admission = ctx.runtime.status(ctx.now()).admission
        body = {"status": "serving" if admission.allowed else admission.reason}
        return JSONResponse(body, status_code=200 if admission.allowed else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        text, content_type = metrics_text(ctx.runtime.status(ctx.now()), model=ctx.model_name)
        return Response(text, media_type=content_type)

    @app.get("/attestation")
    async def attestation(nonce: str | None = None) -> JSONResponse:
        if nonce is None:
            evidence = node.enrolment_evidence
        elif _NONCE_HEX.fullmatch(nonce):
            evidence = await asyncio.to_thread(node.evidence, Nonce(bytes.fromhex(nonce)))
        else:
            raise InvalidInputError("nonce must be 64 lower-case hex digits (32 bytes)")
        status = ctx.runtime.status(ctx.now())
        return JSONResponse(
            {
                "evidence": json.loads(evidence),
                "manifest": base64.b64encode(node.signed_manifest.raw).decode(),
                "manifest_signature": node.signed_manifest.signature.hex(),
                "lease_id": status.lease_id,
                "instance_id": status.instance_id,
                "status": "serving" if status.admission.allowed else status.admission.reason,
                "grant_seq": status.grant_seq,
                "unit": ctx.unit,
                "insecure": node.attester.tee.value == "simulated",
            }
        )

    return app
