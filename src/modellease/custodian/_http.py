"""What both custodian routers share: problem+json refusals, status codes, capped bodies.

* every refusal is ``application/problem+json`` (RFC 9457) carrying the error's ``reason``;
* the status comes from one table, most specific error first; anything unknown is a 500;
* a request body is refused once it passes its limit, before it is parsed.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from modellease.custodian import ledger
from modellease.custodian.auth import AuthenticationError, PermissionDeniedError
from modellease.custodian.renewal import UnknownReporterError
from modellease.custodian.service import NonceRefusedError, UnknownLeaseError
from modellease.errors import (
    AttestationError,
    InvalidInputError,
    LimitExceededError,
    ModelleaseError,
    StateError,
)
from modellease.protocol.messages import OrderNotAllowedError
from modellease.protocol.signed import SignedDocumentError

STATUS: tuple[tuple[type[Exception], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (UnknownLeaseError, 404),
    (ledger.UnknownInstanceError, 404),
    (UnknownReporterError, 401),
    (OrderNotAllowedError, 403),
    (SignedDocumentError, 401),
    (NonceRefusedError, 403),
    (AttestationError, 403),
    (LimitExceededError, 413),
    (ledger.BudgetExhaustedError, 429),
    (ledger.UsageAboveAllowanceError, 409),
    (ledger.LedgerError, 409),
    (InvalidInputError, 400),
    (StateError, 409),
)


def problem(status: int, reason: str, detail: str, **extra: Any) -> JSONResponse:  # noqa: ANN401
    body = {
        "type": f"urn:modellease:problem:{reason}",
        "title": reason,
        "status": status,
        "detail": detail,
        "reason": reason,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def status_for(exc: ModelleaseError) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


def malformed(exc: ValidationError) -> JSONResponse:
    """A request that does not match its wire model: 400 naming the first bad field."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return problem(400, "malformed_request", f"{where}: {first['msg']}")


async def read_body(request: Request, *, limit: int) -> bytes:
    """The request body, refused as soon as it is (or is declared to be) over ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise LimitExceededError(f"request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise LimitExceededError(f"request body larger than {limit} bytes")
    return bytes(body)
