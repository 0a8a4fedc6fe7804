"""HTTP plumbing both services share (custodian and node): the app itself,
problem+json refusals, capped request bodies.

* every refusal is ``application/problem+json`` (RFC 9457) carrying a stable ``reason``;
* a request body is refused once it passes its limit (declared or read), before parsing;
* every app comes from :func:`service_app`: no generated docs, and FastAPI's native
  OpenTelemetry off (:data:`NO_TELEMETRY`): the environment a service
  runs in (on a node, the borrower's) must not be able to switch on request spans, and
  asking whether it is configured costs every request an environment lookup.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from pydantic import ValidationError

from modellease.errors import LimitExceededError

NO_TELEMETRY: Final[TelemetryConfig] = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "auto_configure": False,
}


def service_app(title: str, **options: Any) -> FastAPI:  # noqa: ANN401 - FastAPI's own options
    """A FastAPI app as both services run theirs (see the module docstring)."""
    return FastAPI(
        title=title,
        version="1",
        docs_url=None,
        redoc_url=None,
        telemetry=NO_TELEMETRY,
        **options,
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
