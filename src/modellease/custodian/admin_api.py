"""The custodian's admin API (``/admin/v1``): leases, orders, budget, tokens, audit log.

Every route does the same four things, in this order: **authenticate** the bearer token
(``Authorization: Bearer mlt_...``; 401), **authorize** the principal for the route's
:class:`~modellease.custodian.auth.Permission` on the lease the route touches (403), then
parse the body (400) and act through :class:`ControlPlane` (404, 409). No decision is taken
here: the permission table is :mod:`.auth`, the budget is the ledger's.

Rules:

* authorization comes before any lookup: a principal that may not act on a lease gets the
  same 403 whether the lease (or extension request, or token) exists or not, so the API is
  no existence oracle. Where the lease is only known from a stored object (an extension
  request), the role alone is checked first, then the lease once looked up; an unknown
  request is refused to a lease-bound principal with the same 403;
* global actions (create a lease, create or revoke a token, list every lease, export the
  whole audit log) are authorized with ``lease_id=None``, which a lease-bound principal is
  always refused. Listing leases is scoped instead: a bound principal lists its own lease;
* an order route needs the permission of its ``kind`` (``order.kill``, ``order.pause``,
  ``order.resume``); a principal with none of the three is refused before its body is read;
* **audit export**: ``GET /admin/v1/audit`` is the whole hash chain, byte for byte what
  ``modellease audit export`` writes (JSON lines), for unbound principals only.
  ``?lease_id=L`` exports only the entries of lease ``L`` (``audit.export`` on ``L``: an
  overseer bound to ``L`` may). Such an export says so in its ``Modellease-Audit-Scope``
  header and **cannot verify as a chain** (the links run through other leases' entries);
  each line still carries its own hash, to be checked against a full export. The gaps in
  ``seq`` show how many entries other leases had in between, nothing more;
* counts (budgets, allowances, usage, units) are carried as decimal strings, as in the
  node protocol; requests may also give them as JSON integers. Times are RFC 3339 UTC to
  the second (``2027-01-01T00:00:00Z``);
* every refusal is ``application/problem+json`` with a stable ``reason``: 401
  ``unauthenticated`` (with ``WWW-Authenticate: Bearer``), 403 ``permission_denied``, 404
  (``unknown_lease``, ``unknown_instance``, ``extension_request_not_found``,
  ``token_not_found``, ``not_found``), 405 ``method_not_allowed``, 409 (``lease_exists``,
  ``extension_request_decided``, ledger refusals), 400 (``malformed_request`` and other
  input errors); including for paths under ``/admin/v1`` that name no route;
* a new token is in one response only (``Cache-Control: no-store``) and never in a log or
  an audit entry; token creation and revocation are audited in their own transaction;
* the actor of every audit entry written here is ``principal.actor`` (role and token id);
* database work runs in the thread pool, never on the event loop; orders are published to
  connected nodes from the event loop, after their transaction committed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match

from modellease._http import malformed, problem, read_body
from modellease.custodian import ledger
from modellease.custodian._http import status_for
from modellease.custodian.auth import (
    AuthenticationError,
    Permission,
    PermissionDeniedError,
    Principal,
    Role,
    UnknownTokenError,
    authorize,
    bearer_from_authorization,
)
from modellease.custodian.records import lease_state
from modellease.custodian.service import ControlPlane, LeaseSpec
from modellease.custodian.store import InstanceRow, LeaseRow, ReportRow, TokenRow
from modellease.errors import InvalidInputError, ModelleaseError
from modellease.protocol import (
    ExtensionRequest,
    SignedDocument,
    UsageCounters,
    UsageReport,
    format_timestamp,
    parse_timestamp,
)
from modellease.protocol.messages import (
    BUNDLE_ID_PATTERN,
    Count,
    Identifier,
    Reason,
    Timestamp,
)

PREFIX: Final = "/admin/v1"
MAX_ADMIN_BODY_SIZE: Final = 1024 * 1024  # a lease spec with a large policy stays far below
MAX_OVERSEERS: Final = 16  # overseer keys named by one lease
DEFAULT_PAGE_SIZE: Final = 100  # leases per page of GET /admin/v1/leases
MAX_PAGE_SIZE: Final = 1000
AUDIT_MEDIA_TYPE: Final = "application/jsonl"
AUDIT_SCOPE_HEADER: Final = "Modellease-Audit-Scope"  # "all", or "lease <id>" when filtered
_ED25519_PUBLIC_HEX: Final = r"^[0-9a-f]{64}$"
_ORDER_PERMISSIONS: Final = {
    "kill": Permission.ORDER_KILL,
    "pause": Permission.ORDER_PAUSE,
    "resume": Permission.ORDER_RESUME,
}

Clock = Callable[[], datetime]
PublishOrder = Callable[[str, SignedDocument], None]


# --------------------------------------------------------------------------- errors
class LeaseExistsError(InvalidInputError):
    """A lease with this id already exists (HTTP 409)."""

    reason = "lease_exists"


class UnknownExtensionRequestError(InvalidInputError):
    """No extension request with this id (HTTP 404)."""

    reason = "extension_request_not_found"


class ExtensionRequestDecidedError(InvalidInputError):
    """The extension request was already approved or denied (HTTP 409)."""

    reason = "extension_request_decided"


class UnknownRouteError(InvalidInputError):
    """No admin route at this path (HTTP 404)."""

    reason = "not_found"


class MethodNotAllowedError(InvalidInputError):
    """The path exists, but not with this method (HTTP 405)."""

    reason = "method_not_allowed"

    def __init__(self, message: str, *, allow: Iterable[str]) -> None:
        super().__init__(message)
        self.allow = sorted(set(allow))


# Refusals whose status the node API's table does not know (or gets too coarse); checked
# before app.status_for, most specific first.
_ADMIN_STATUS: Final[tuple[tuple[type[Exception], int], ...]] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (UnknownTokenError, 404),
    (UnknownExtensionRequestError, 404),
    (UnknownRouteError, 404),
    (MethodNotAllowedError, 405),
    (LeaseExistsError, 409),
    (ExtensionRequestDecidedError, 409),
    (ledger.LeaseTermsError, 400),
)


def _refusal(exc: ModelleaseError) -> JSONResponse:
    status = next((code for kind, code in _ADMIN_STATUS if isinstance(exc, kind)), None)
    response = problem(status or status_for(exc), exc.reason, str(exc))
    if isinstance(exc, AuthenticationError):
        response.headers["WWW-Authenticate"] = 'Bearer realm="modellease"'
    if isinstance(exc, MethodNotAllowedError):
        response.headers["Allow"] = ", ".join(exc.allow)
    return response


class _AdminRoute(APIRoute):
    """Renders this router's refusals itself: the app's table maps auth errors to 400."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except ModelleaseError as exc:
                return _refusal(exc)
            except ValidationError as exc:
                return malformed(exc)

        return guarded


# --------------------------------------------------------------------------- wire models
_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)


def _within_ledger(value: int) -> int:
    if value > ledger.MAX_UNITS:
        raise ValueError(f"must be at most {ledger.MAX_UNITS}")
    return value


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError("must be at least 1")
    return value


Units = Annotated[Count, AfterValidator(_within_ledger)]
PositiveUnits = Annotated[Units, AfterValidator(_at_least_one)]


class LeaseCreateBody(BaseModel):
    """``POST /admin/v1/leases``. Limits are the ledger's; these bounds only keep types sane."""

    model_config = _STRICT

    lease_id: Identifier
    bundle_id: Annotated[str, Field(pattern=BUNDLE_ID_PATTERN)]
    unit: Literal["requests", "tokens", "flops"]
    budget: Units
    slice_size: Units
    heartbeat_ttl_s: Annotated[int, Field(ge=0, le=int(ledger.MAX_HEARTBEAT_TTL.total_seconds()))]
    hard_expiry_s: Annotated[int, Field(ge=0, le=int(ledger.MAX_HARD_EXPIRY.total_seconds()))]
    ends_at: Timestamp
    policy: dict[str, JsonValue]
    overseers: Annotated[
        list[Annotated[str, Field(pattern=_ED25519_PUBLIC_HEX)]],
        Field(max_length=MAX_OVERSEERS),
    ] = []
    auto_approve_per_day: PositiveUnits | None = None

    def spec(self) -> LeaseSpec:
        return LeaseSpec(
            lease_id=self.lease_id,
            bundle_id=self.bundle_id,
            unit=ledger.Unit(self.unit),
            budget=self.budget,
            slice_size=self.slice_size,
            heartbeat_ttl=timedelta(seconds=self.heartbeat_ttl_s),
            hard_expiry=timedelta(seconds=self.hard_expiry_s),
            ends_at=parse_timestamp(self.ends_at),
            policy=dict(self.policy),
            overseers=tuple(self.overseers),
            auto_approve_per_day=self.auto_approve_per_day,
        )


class OrderBody(BaseModel):
    """``POST /admin/v1/leases/{id}/orders``: without ``instance_id``, the whole lease."""

    model_config = _STRICT

    kind: Literal["kill", "pause", "resume"]
    instance_id: Identifier | None = None
    reason: Reason


class ExtendBody(BaseModel):
    model_config = _STRICT

    units: PositiveUnits


class ExtensionRequestBody(BaseModel):
    model_config = _STRICT

    units: PositiveUnits
    reason: Reason


class TokenBody(BaseModel):
    model_config = _STRICT

    role: Literal["operator", "overseer", "borrower"]
    lease_id: Identifier | None = None


class InstanceView(BaseModel):
    instance_id: str
    status: str
    paused: bool
    allowance: Count
    usage: Count
    grant_seq: int
    valid_until: str
    enrolled_at: str
    ended_at: str | None
    tee: str
    insecure: bool


class LeaseSummary(BaseModel):
    lease_id: str
    bundle_id: str
    unit: str
    budget: Count
    committed: Count
    consumed: Count
    remaining: Count
    paused: bool
    killed: bool
    ends_at: str
    created_at: str


class LeasePage(BaseModel):
    leases: list[LeaseSummary]
    next_after: str | None  # pass as ?after= for the next page; null on the last page


class LeaseView(LeaseSummary):
    slice_size: Count
    heartbeat_ttl_s: int
    hard_expiry_s: int
    overseers: list[str]
    auto_approve_per_day: Count | None
    policy: JsonValue
    instances: list[InstanceView]


class InstanceUsage(BaseModel):
    instance_id: str
    status: str
    allowance: Count
    usage: Count  # in the lease's unit
    last_report_seq: int
    last_report_at: str | None
    counters: UsageCounters | None  # the last accepted report's cumulative counters


class UsageView(BaseModel):
    lease_id: str
    unit: str
    budget: Count
    committed: Count
    consumed: Count
    remaining: Count
    instances: list[InstanceUsage]


class ExtensionView(BaseModel):
    request_id: str
    lease_id: str
    units: Count
    status: str


class TokenView(BaseModel):
    token_id: str
    role: str
    lease_id: str | None
    created_at: str
    revoked_at: str | None


class NewTokenView(TokenView):
    token: str  # shown once


def _summary_fields(row: LeaseRow) -> dict[str, Any]:
    state = lease_state(row)  # the ledger says what is consumed and what remains
    return {
        "lease_id": row.id,
        "bundle_id": row.bundle_id,
        "unit": row.unit,
        "budget": state.budget,
        "committed": state.committed,
        "consumed": state.consumed,
        "remaining": state.remaining,
        "paused": state.paused,
        "killed": state.killed,
        "ends_at": format_timestamp(row.ends_at),
        "created_at": format_timestamp(row.created_at),
    }


def _instance_view(row: InstanceRow) -> InstanceView:
    return InstanceView(
        instance_id=row.id,
        status=row.status,
        paused=row.paused,
        allowance=row.allowance,
        usage=row.usage,
        grant_seq=row.grant_seq,
        valid_until=format_timestamp(row.valid_until),
        enrolled_at=format_timestamp(row.enrolled_at),
        ended_at=format_timestamp(row.ended_at) if row.ended_at else None,
        tee=row.tee,
        insecure=row.insecure,
    )


def _lease_view(row: LeaseRow, instances: list[InstanceRow]) -> LeaseView:
    return LeaseView(
        **_summary_fields(row),
        slice_size=row.slice_size,
        heartbeat_ttl_s=row.heartbeat_ttl_s,
        hard_expiry_s=row.hard_expiry_s,
        overseers=json.loads(row.overseers_json),
        auto_approve_per_day=row.auto_approve_per_day,
        policy=json.loads(row.policy_json),
        instances=[_instance_view(i) for i in instances],
    )


def _instance_usage(row: InstanceRow, report: ReportRow | None) -> InstanceUsage:
    counters = None
    if report is not None:  # verified when it was accepted; stored as received
        signed = SignedDocument.from_json(report.signed_json.encode())
        counters = UsageReport.model_validate_json(signed.payload).counters
    return InstanceUsage(
        instance_id=row.id,
        status=row.status,
        allowance=row.allowance,
        usage=row.usage,
        last_report_seq=row.last_report_seq,
        last_report_at=format_timestamp(report.received_at) if report else None,
        counters=counters,
    )


def _token_fields(row: TokenRow) -> dict[str, Any]:
    return {
        "token_id": row.id,
        "role": row.role,
        "lease_id": row.lease_id,
        "created_at": format_timestamp(row.created_at),
        "revoked_at": format_timestamp(row.revoked_at) if row.revoked_at else None,
    }


def _json(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        model.model_dump_json(), status_code=status, media_type="application/json", headers=headers
    )


# --------------------------------------------------------------------------- request helpers
def _page_size(request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return DEFAULT_PAGE_SIZE
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
    return int(text)


def _may_at_all(principal: Principal, permission: Permission) -> None:
    """Refuse unless the role has ``permission`` at all: checked on the principal's own scope."""
    authorize(principal, permission, lease_id=principal.lease_id)


def _may_any(principal: Principal, permissions: Iterable[Permission], *, lease_id: str) -> None:
    """Refuse unless ``principal`` has at least one of ``permissions`` on ``lease_id``."""
    refusals: list[PermissionDeniedError] = []
    for permission in permissions:
        try:
            authorize(principal, permission, lease_id=lease_id)
        except PermissionDeniedError as exc:
            refusals.append(exc)
        else:
            return
    raise refusals[0]


def _allowed_methods(routes: Iterable[BaseRoute], request: Request) -> set[str]:
    """Methods of the routes whose path matches this request but whose method does not."""
    allow: set[str] = set()
    for route in routes:
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] is Match.PARTIAL:
            allow |= route.methods or set()
    return allow


# --------------------------------------------------------------------------- the handlers
class _AdminHandlers:
    """One method per route; each authenticates, authorizes, parses, then acts."""

    def __init__(self, plane: ControlPlane, *, clock: Clock, publish_order: PublishOrder) -> None:
        self._plane = plane
        self._clock = clock
        self._publish_order = publish_order

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    async def _principal(self, request: Request) -> Principal:
        bearer = bearer_from_authorization(request.headers.get("authorization"))
        return await run_in_threadpool(self._plane.authenticate, bearer, now=self._now())

    async def _lease_view(self, lease_id: str) -> LeaseView:
        lease, instances = await run_in_threadpool(self._plane.lease_status, lease_id)
        return _lease_view(lease, instances)

    # ---------------------------------------------------------------- leases
    async def create_lease(self, request: Request) -> Response:
        principal = await self._principal(request)
        authorize(principal, Permission.LEASE_CREATE, lease_id=None)
        body = LeaseCreateBody.model_validate_json(
            await read_body(request, limit=MAX_ADMIN_BODY_SIZE)
        )
        if await run_in_threadpool(self._plane.lease_exists, body.lease_id):
            raise LeaseExistsError(f"lease {body.lease_id!r} already exists")
        await run_in_threadpool(
            self._plane.create_lease, body.spec(), now=self._now(), actor=principal.actor
        )
        view = await self._lease_view(body.lease_id)
        return _json(view, 201, {"Location": f"{PREFIX}/leases/{body.lease_id}"})

    async def list_leases(self, request: Request) -> Response:
        principal = await self._principal(request)
        authorize(principal, Permission.LEASE_LIST, lease_id=principal.lease_id)
        limit = _page_size(request)
        rows = await run_in_threadpool(
            self._plane.list_leases,
            only=principal.lease_id,  # a bound principal lists its own lease, nothing else
            after=request.query_params.get("after"),
            limit=limit,
        )
        page = LeasePage(
            leases=[LeaseSummary(**_summary_fields(r)) for r in rows],
            next_after=rows[-1].id if len(rows) == limit else None,
        )
        return _json(page)

    async def show_lease(self, lease_id: str, request: Request) -> Response:
        principal = await self._principal(request)
        authorize(principal, Permission.LEASE_READ, lease_id=lease_id)
        return _json(await self._lease_view(lease_id))

    async def lease_usage(self, lease_id: str, request: Request) -> Response:
        principal = await self._principal(request)
        authorize(principal, Permission.USAGE_READ, lease_id=lease_id)
        lease, rows = await run_in_threadpool(self._plane.usage, lease_id)
        fields = _summary_fields(lease)
        view = UsageView(
            lease_id=lease.id,
            unit=lease.unit,
            budget=fields["budget"],
            committed=fields["committed"],
            consumed=fields["consumed"],
            remaining=fields["remaining"],
            instances=[_instance_usage(instance, report) for instance, report in rows],
        )
        return _json(view)

    # ---------------------------------------------------------------- orders and budget
    async def issue_order(self, lease_id: str, request: Request) -> Response:
        principal = await self._principal(request)
        _may_any(principal, _ORDER_PERMISSIONS.values(), lease_id=lease_id)
        body = OrderBody.model_validate_json(await read_body(request, limit=MAX_ADMIN_BODY_SIZE))
        authorize(principal, _ORDER_PERMISSIONS[body.kind], lease_id=lease_id)
        signed = await run_in_threadpool(
            self._plane.order,
            lease_id=lease_id,
            kind=body.kind,
            instance_id=body.instance_id,
            reason=body.reason,
            now=self._now(),
            actor=principal.actor,
        )
        self._publish_order(lease_id, signed)  # committed: push it to connected nodes now
        return Response(signed.to_json(), status_code=201, media_type="application/json")

    async def extend_lease(self, lease_id: str, request: Request) -> Response:
        principal = await self._principal(request)
        authorize(principal, Permission.LEASE_EXTEND, lease_id=lease_id)
        body = ExtendBody.model_validate_json(await read_body(request, limit=MAX_ADMIN_BODY_SIZE))
        await run_in_threadpool(
            self._plane.extend, lease_id, units=body.units, now=self._now(), actor=principal.actor
        )
        return _json(await self._lease_view(lease_id))

    async def request_extension(self, lease_id: str, request: Request) -> Response:
        principal = await self._principal(request)
        authorize(principal, Permission.EXTENSION_REQUEST, lease_id=lease_id)
        body = ExtensionRequestBody.model_validate_json(
            await read_body(request, limit=MAX_ADMIN_BODY_SIZE)
        )
        now = self._now()
        message = ExtensionRequest(
            lease_id=lease_id,
            requester="borrower",  # over the admin API, not signed by an instance
            units=body.units,
            reason=body.reason,
            requested_at=format_timestamp(now),
        )
        request_id = await run_in_threadpool(
            self._plane.request_extension, message, now=now, actor=principal.actor
        )
        view = ExtensionView(
            request_id=request_id, lease_id=lease_id, units=body.units, status="pending"
        )
        return _json(view, 201)

    async def approve_extension(self, request_id: str, request: Request) -> Response:
        return await self._decide(request_id, request, approve=True)

    async def deny_extension(self, request_id: str, request: Request) -> Response:
        return await self._decide(request_id, request, approve=False)

    async def _decide(self, request_id: str, request: Request, *, approve: bool) -> Response:
        principal = await self._principal(request)
        _may_at_all(principal, Permission.EXTENSION_DECIDE)  # the role, before any lookup
        row = await run_in_threadpool(self._plane.extension_request, request_id)
        # An unknown request has no lease: a bound principal is refused it like another lease's.
        authorize(principal, Permission.EXTENSION_DECIDE, lease_id=row.lease_id if row else None)
        if row is None:
            raise UnknownExtensionRequestError(f"no extension request {request_id!r}")
        if row.status != "pending":
            raise ExtensionRequestDecidedError(
                f"extension request {request_id!r} was already {row.status}"
            )
        await run_in_threadpool(
            self._plane.decide_extension,
            request_id,
            approve=approve,
            now=self._now(),
            actor=principal.actor,
        )
        status = "approved" if approve else "denied"
        view = ExtensionView(
            request_id=request_id, lease_id=row.lease_id, units=row.units, status=status
        )
        return _json(view)

    # ---------------------------------------------------------------- tokens
    async def create_token(self, request: Request) -> Response:
        principal = await self._principal(request)
        authorize(principal, Permission.TOKEN_CREATE, lease_id=None)  # minting is global
        body = TokenBody.model_validate_json(await read_body(request, limit=MAX_ADMIN_BODY_SIZE))
        token, row = await run_in_threadpool(
            self._plane.create_token,
            role=Role(body.role),
            lease_id=body.lease_id,
            now=self._now(),
            actor=principal.actor,
        )
        return _json(
            NewTokenView(token=token, **_token_fields(row)), 201, {"Cache-Control": "no-store"}
        )

    async def revoke_token(self, token_id: str, request: Request) -> Response:
        principal = await self._principal(request)
        authorize(principal, Permission.TOKEN_REVOKE, lease_id=None)
        row = await run_in_threadpool(
            self._plane.revoke_token, token_id, now=self._now(), actor=principal.actor
        )
        return _json(TokenView(**_token_fields(row)))

    # ---------------------------------------------------------------- audit log
    async def export_audit(self, request: Request) -> Response:
        principal = await self._principal(request)
        lease_id = request.query_params.get("lease_id")
        authorize(principal, Permission.AUDIT_EXPORT, lease_id=lease_id)
        lines = self._plane.audit_lines(lease_id=lease_id)  # a generator: reads as it streams
        return StreamingResponse(
            (line + "\n" for line in lines),
            media_type=AUDIT_MEDIA_TYPE,
            headers={AUDIT_SCOPE_HEADER: "all" if lease_id is None else f"lease {lease_id}"},
        )


# --------------------------------------------------------------------------- the router
def admin_router(plane: ControlPlane, *, clock: Clock, publish_order: PublishOrder) -> APIRouter:
    """The ``/admin/v1`` routes over ``plane``; signed orders also go to ``publish_order``."""
    h = _AdminHandlers(plane, clock=clock, publish_order=publish_order)
    routes: tuple[tuple[str, str, Callable[..., Coroutine[Any, Any, Response]]], ...] = (
        # method, path, handler; the permission each handler authorizes
        ("POST", "/leases", h.create_lease),  # lease.create
        ("GET", "/leases", h.list_leases),  # lease.list
        ("GET", "/leases/{lease_id}", h.show_lease),  # lease.read
        ("GET", "/leases/{lease_id}/usage", h.lease_usage),  # usage.read
        ("POST", "/leases/{lease_id}/orders", h.issue_order),  # order.<kind>
        ("POST", "/leases/{lease_id}/extend", h.extend_lease),  # lease.extend
        ("POST", "/leases/{lease_id}/extensions", h.request_extension),  # extension.request
        ("POST", "/extensions/{request_id}/approve", h.approve_extension),  # extension.decide
        ("POST", "/extensions/{request_id}/deny", h.deny_extension),  # extension.decide
        ("POST", "/tokens", h.create_token),  # token.create
        ("DELETE", "/tokens/{token_id}", h.revoke_token),  # token.revoke
        ("GET", "/audit", h.export_audit),  # audit.export
    )
    router = APIRouter(prefix=PREFIX, route_class=_AdminRoute)
    for method, path, endpoint in routes:
        router.add_api_route(path, endpoint, methods=[method])
    known = list(router.routes)

    async def no_route(path: str, request: Request) -> Response:
        allow = _allowed_methods(known, request)
        if allow:
            raise MethodNotAllowedError(f"{request.method} is not allowed here", allow=allow)
        raise UnknownRouteError(f"no admin route {PREFIX}/{path}")

    router.add_api_route(  # last: problem+json for any other path under the prefix
        "/{path:path}",
        no_route,
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        include_in_schema=False,
    )
    return router


__all__ = [
    "AUDIT_MEDIA_TYPE",
    "AUDIT_SCOPE_HEADER",
    "MAX_ADMIN_BODY_SIZE",
    "PREFIX",
    "ExtensionRequestDecidedError",
    "LeaseExistsError",
    "MethodNotAllowedError",
    "UnknownExtensionRequestError",
    "UnknownRouteError",
    "admin_router",
]
