"""The admin API (``/admin/v1``) on a real server on loopback, on SQLite and PostgreSQL.

First the whole matrix of principals x routes (one server per database): the exact status
of every call, and proof afterwards that refused calls changed nothing. Then the flows an
operator, an overseer and a borrower go through, each named after what it shows.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modellease.custodian.audit import AuditChainError, parse_export_line, verify_chain
from modellease.custodian.auth import Role
from modellease.custodian.store import TokenRow
from modellease.protocol import ExtensionRequest, SignedDocument, format_timestamp, verify_order
from modellease.testing.node import SimulatedNode
from tests.integration.custodian_server import (
    BUNDLE_ID,
    Custodian,
    client,
    dev_policy,
    lease_spec,
    running_custodian,
)

A, B, MISSING = "lease-a", "lease-b", "lease-missing"
LEASES = {"a": A, "b": B, "missing": MISSING}
PROBLEM = "application/problem+json"
AUTHENTICATED = ("operator", "overseer", "overseer@a", "borrower@a")
UNAUTHENTICATED = ("no token", "garbage token", "unknown token", "wrong scheme", "revoked token")

# The policy, written out: what each authenticated principal gets, per route and target.
# Targets: a/b/missing are lease A, lease B and a lease that does not exist (for the
# extension routes: a pending request on A, on B, and no such request). A bound principal
# gets the same 403 for B and for a lease that does not exist: no existence oracle.
# Every unauthenticated principal gets 401 everywhere. Routes run in this order (kill last:
# it is terminal, and kill orders are idempotent, so the later kills still succeed).
L3 = ("a", "b", "missing")
DENIED3 = (403, 403, 403)
MATRIX: dict[str, tuple[tuple[str, ...], dict[str, tuple[int, ...]]]] = {
    "lease.create": (
        ("new",),
        {"operator": (201,), "overseer": (403,), "overseer@a": (403,), "borrower@a": (403,)},
    ),
    "lease.list": (
        ("all",),
        {"operator": (200,), "overseer": (200,), "overseer@a": (200,), "borrower@a": (403,)},
    ),
    "lease.read": (
        L3,
        {
            "operator": (200, 200, 404),
            "overseer": (200, 200, 404),
            "overseer@a": (200, 403, 403),
            "borrower@a": (200, 403, 403),
        },
    ),
    "usage.read": (
        L3,
        {
            "operator": (200, 200, 404),
            "overseer": (200, 200, 404),
            "overseer@a": (200, 403, 403),
            "borrower@a": (200, 403, 403),
        },
    ),
    "lease.extend": (
        L3,
        {
            "operator": (200, 200, 404),
            "overseer": DENIED3,
            "overseer@a": DENIED3,
            "borrower@a": DENIED3,
        },
    ),
    "order.pause": (
        L3,
        {
            "operator": (201, 201, 404),
            "overseer": DENIED3,
            "overseer@a": DENIED3,
            "borrower@a": DENIED3,
        },
    ),
    "order.resume": (
        L3,
        {
            "operator": (201, 201, 404),
            "overseer": DENIED3,
            "overseer@a": DENIED3,
            "borrower@a": DENIED3,
        },
    ),
    "extension.request": (
        L3,
        {
            "operator": (201, 201, 404),
            "overseer": DENIED3,
            "overseer@a": DENIED3,
            "borrower@a": (201, 403, 403),
        },
    ),
    "extension.approve": (
        L3,
        {
            "operator": (200, 200, 404),
            "overseer": DENIED3,
            "overseer@a": DENIED3,
            "borrower@a": DENIED3,
        },
    ),
    "extension.deny": (
        L3,
        {
            "operator": (200, 200, 404),
            "overseer": DENIED3,
            "overseer@a": DENIED3,
            "borrower@a": DENIED3,
        },
    ),
    "token.create": (
        ("overseer", "borrower@a", "operator"),
        {
            "operator": (201, 201, 201),
            "overseer": DENIED3,
            "overseer@a": DENIED3,
            "borrower@a": DENIED3,
        },
    ),
    "token.revoke": (
        ("token",),
        {"operator": (200,), "overseer": (403,), "overseer@a": (403,), "borrower@a": (403,)},
    ),
    "audit.export": (
        ("all", "a", "b"),
        {
            "operator": (200, 200, 200),
            "overseer": (200, 200, 200),
            "overseer@a": (403, 200, 403),
            "borrower@a": DENIED3,
        },
    ),
    "order.kill": (
        L3,
        {
            "operator": (201, 201, 404),
            "overseer": (201, 201, 404),
            "overseer@a": (201, 403, 403),
            "borrower@a": DENIED3,
        },
    ),
}
NOT_FOUND_REASON = {
    "extension.approve": "extension_request_not_found",
    "extension.deny": "extension_request_not_found",
}


@dataclass
class Admin:
    """A running custodian with leases A and B, and a token per principal."""

    custodian: Custodian
    http: httpx.Client
    tokens: dict[str, str]  # principal name -> bearer token
    token_ids: dict[str, str]

    def headers(self, principal: str) -> dict[str, str]:
        if principal == "no token":
            return {}
        if principal == "wrong scheme":
            return {"Authorization": f"Token {self.tokens['operator']}"}
        return {"Authorization": f"Bearer {self.tokens[principal]}"}

    def call(self, principal: str, method: str, path: str, body: object = None) -> httpx.Response:
        return self.http.request(
            method, f"/admin/v1{path}", json=body, headers=self.headers(principal)
        )

    def actor(self, principal: str) -> str:
        return f"{principal.split('@', maxsplit=1)[0]}:{self.token_ids[principal]}"

    def pending_request(self, lease_id: str) -> str:
        c = self.custodian
        message = ExtensionRequest(
            lease_id=lease_id,
            requester="borrower",
            units=1,
            reason="matrix",
            requested_at=format_timestamp(c.clock()),
        )
        return c.plane.request_extension(message, now=c.clock(), actor="test")

    def new_token(self, role: Role, lease_id: str | None = None) -> tuple[str, TokenRow]:
        return self.custodian.plane.create_token(
            role=role, lease_id=lease_id, now=self.custodian.clock()
        )

    def audit(self, principal: str = "operator", query: str = "") -> list[dict[str, object]]:
        response = self.call(principal, "GET", f"/audit{query}")
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in response.text.splitlines()]


@pytest.fixture
def admin(tmp_path: Path, store_url: str) -> Iterator[Admin]:
    with running_custodian(tmp_path, store_url) as c:
        c.plane.create_lease(lease_spec(A), now=c.clock())
        c.plane.create_lease(lease_spec(B), now=c.clock())
        tokens: dict[str, str] = {
            "garbage token": "mlt_garbage",
            "unknown token": "mlt_" + "0" * 32 + "_" + "0" * 64,
        }
        ids: dict[str, str] = {}
        made = {
            "operator": (Role.OPERATOR, None),
            "overseer": (Role.OVERSEER, None),
            "overseer@a": (Role.OVERSEER, A),
            "borrower@a": (Role.BORROWER, A),
            "revoked token": (Role.OPERATOR, None),
        }
        for name, (role, lease_id) in made.items():
            tokens[name], row = c.plane.create_token(role=role, lease_id=lease_id, now=c.clock())
            ids[name] = row.id
        c.plane.revoke_token(ids["revoked token"], now=c.clock())
        with client(c) as http:
            yield Admin(custodian=c, http=http, tokens=tokens, token_ids=ids)


def lease_body(lease_id: str, **extra: object) -> dict[str, object]:
    return {
        "lease_id": lease_id,
        "bundle_id": BUNDLE_ID,
        "unit": "requests",
        "budget": "100",
        "slice_size": "10",
        "heartbeat_ttl_s": 30,
        "hard_expiry_s": 60,
        "ends_at": "2027-01-01T00:00:00Z",
        "policy": dev_policy(),
        "overseers": [],
    } | extra


def matrix_request(
    admin: Admin, route: str, target: str, fresh: Callable[[], int]
) -> tuple[str, str, object]:
    """The call for ``route`` on ``target``: (method, path, JSON body). Makes what it needs."""
    lease = LEASES.get(target, "")
    order = {"kind": route.removeprefix("order."), "reason": "matrix"}
    match route:
        case "lease.create":
            return "POST", "/leases", lease_body(f"lease-new-{fresh()}")
        case "lease.list":
            return "GET", "/leases", None
        case "lease.read":
            return "GET", f"/leases/{lease}", None
        case "usage.read":
            return "GET", f"/leases/{lease}/usage", None
        case "lease.extend":
            return "POST", f"/leases/{lease}/extend", {"units": "1"}
        case "order.pause" | "order.resume" | "order.kill":
            return "POST", f"/leases/{lease}/orders", order
        case "extension.request":
            return "POST", f"/leases/{lease}/extensions", {"units": 1, "reason": "matrix"}
        case "extension.approve" | "extension.deny":
            request_id = "ext-missing" if target == "missing" else admin.pending_request(lease)
            return "POST", f"/extensions/{request_id}/{route.split('.')[1]}", None
        case "token.create":
            role, _, bound = target.partition("@")
            return "POST", "/tokens", {"role": role, "lease_id": LEASES.get(bound)}
        case "token.revoke":
            _, row = admin.new_token(Role.BORROWER, A)
            return "DELETE", f"/tokens/{row.id}", None
        case "audit.export":
            return "GET", "/audit" if target == "all" else f"/audit?lease_id={lease}", None
    raise AssertionError(route)


def test_matrix_of_roles_and_routes_allows_exactly_the_policy(admin: Admin) -> None:
    counter = itertools.count()
    mismatches: list[str] = []
    calls = 0
    for route, (targets, allowed) in MATRIX.items():
        expected = allowed | dict.fromkeys(UNAUTHENTICATED, (401,) * len(targets))
        for principal, codes in expected.items():
            for target, code in zip(targets, codes, strict=True):
                method, path, body = matrix_request(admin, route, target, lambda: next(counter))
                response = admin.call(principal, method, path, body)
                calls += 1
                got = response.status_code
                reason = response.json().get("reason") if got >= 400 else None
                want_reason = {
                    401: "unauthenticated",
                    403: "permission_denied",
                    404: NOT_FOUND_REASON.get(route, "unknown_lease"),
                }.get(code)
                problem_ok = got < 400 or response.headers["content-type"] == PROBLEM
                auth_header_ok = got != 401 or response.headers.get(
                    "www-authenticate", ""
                ).startswith("Bearer")
                if (got, reason) != (code, want_reason) or not problem_ok or not auth_header_ok:
                    mismatches.append(
                        f"{principal:>14} {route:<18} {target:<10} {method} {path}: "
                        f"expected {code} {want_reason}, got {got} {response.text[:120]}"
                    )
    assert not mismatches, f"{len(mismatches)} of {calls} calls:\n" + "\n".join(mismatches)
    assert calls == sum(len(t) * (len(a) + len(UNAUTHENTICATED)) for t, a in MATRIX.values())

    # What the refused calls did not do: only the operator's extend (+1) and approval (+1)
    # changed each budget, and the audit log holds nothing an overseer or borrower may not do.
    for lease_id in (A, B):
        shown = admin.call("operator", "GET", f"/leases/{lease_id}").json()
        assert (shown["budget"], shown["paused"], shown["killed"]) == ("102", False, True)
    done_by = {(e["actor"].split(":")[0], e["kind"]) for e in admin.audit()}
    assert {kind for role, kind in done_by if role == "overseer"} == {"order_kill"}
    assert {kind for role, kind in done_by if role == "borrower"} == {"extension_requested"}


def test_created_lease_is_listed_and_shown(admin: Admin) -> None:
    created = admin.call("operator", "POST", "/leases", lease_body("lease-c", budget=500))
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/admin/v1/leases/lease-c"
    shown = admin.call("operator", "GET", "/leases/lease-c").json()
    assert shown == created.json()
    assert {k: shown[k] for k in ("budget", "committed", "consumed", "remaining", "unit")} == {
        "budget": "500",
        "committed": "0",
        "consumed": "0",
        "remaining": "500",
        "unit": "requests",
    }
    assert (shown["killed"], shown["paused"], shown["instances"]) == (False, False, [])

    listed = admin.call("operator", "GET", "/leases").json()
    assert [lease["lease_id"] for lease in listed["leases"]] == [A, B, "lease-c"]
    first = admin.call("operator", "GET", "/leases?limit=2").json()
    assert ([x["lease_id"] for x in first["leases"]], first["next_after"]) == ([A, B], B)
    rest = admin.call("operator", "GET", f"/leases?limit=2&after={B}").json()
    assert ([x["lease_id"] for x in rest["leases"]], rest["next_after"]) == (["lease-c"], None)
    bound = admin.call("overseer@a", "GET", "/leases").json()
    assert [x["lease_id"] for x in bound["leases"]] == [A]  # a bound overseer sees its lease

    again = admin.call("operator", "POST", "/leases", lease_body("lease-c"))
    assert (again.status_code, again.json()["reason"]) == (409, "lease_exists")
    for body, reason in (
        (lease_body("lease-d", budget="-1"), "malformed_request"),
        (lease_body("lease-d", ends_at="2027-01-01"), "malformed_request"),
        (lease_body("lease-d", surprise=True), "malformed_request"),
        (lease_body("lease-d", policy={}), "policy_invalid"),
        (lease_body("lease-d", heartbeat_ttl_s=0), "lease_terms_invalid"),
    ):
        refused = admin.call("operator", "POST", "/leases", body)
        assert (refused.status_code, refused.json()["reason"]) == (400, reason), refused.text
        assert refused.headers["content-type"] == PROBLEM
    not_json = admin.http.post(
        "/admin/v1/leases", content=b"{nope", headers=admin.headers("operator")
    )
    assert (not_json.status_code, not_json.json()["reason"]) == (400, "malformed_request")
    assert admin.call("operator", "GET", "/leases/lease-d").status_code == 404


def test_unknown_admin_paths_and_methods_are_problems(admin: Admin) -> None:
    missing = admin.call("operator", "GET", "/nothing/here")
    assert (missing.status_code, missing.json()["reason"]) == (404, "not_found")
    assert missing.headers["content-type"] == PROBLEM
    wrong = admin.call("operator", "PUT", "/leases")
    assert (wrong.status_code, wrong.json()["reason"]) == (405, "method_not_allowed")
    assert wrong.headers["allow"] == "GET, POST"
    bad_page = admin.call("operator", "GET", "/leases?limit=0")
    assert (bad_page.status_code, bad_page.json()["reason"]) == (400, "invalid_input")


def test_borrower_order_is_refused_before_its_body_is_read(admin: Admin) -> None:
    refused = admin.http.post(
        f"/admin/v1/leases/{A}/orders", content=b"{nope", headers=admin.headers("borrower@a")
    )
    assert (refused.status_code, refused.json()["reason"]) == (403, "permission_denied")
    # An overseer may kill, so its body is read; then pausing is refused all the same.
    pause = admin.call(
        "overseer@a", "POST", f"/leases/{A}/orders", {"kind": "pause", "reason": "x"}
    )
    assert (pause.status_code, pause.json()["reason"]) == (403, "permission_denied")


def test_kill_order_reaches_connected_and_renewing_nodes(admin: Admin) -> None:
    c = admin.custodian
    with client(c) as node_http, client(c) as stream_http:
        node = SimulatedNode(node_http, A, c.home.public_key)
        node.enrol()
        node.use(requests=3, prompt_tokens=7)
        node.renew()
        usage = admin.call("borrower@a", "GET", f"/leases/{A}/usage").json()
        (seen,) = usage["instances"]
        assert (seen["instance_id"], seen["status"], seen["usage"]) == (
            node.instance_id,
            "active",
            "3",
        )
        assert (seen["counters"]["requests"], seen["counters"]["prompt_tokens"]) == ("3", "7")
        assert (usage["consumed"], usage["committed"]) == ("3", "13")  # top-up: 3 used + 10

        with stream_http.stream("GET", f"/v1/leases/{A}/orders") as stream:
            lines = stream.iter_lines()
            assert next(lines) == ": connected"
            order = {"kind": "kill", "instance_id": node.instance_id, "reason": "regulator"}
            issued = admin.call("overseer@a", "POST", f"/leases/{A}/orders", order)
            assert issued.status_code == 201, issued.text
            signed = SignedDocument.from_json(issued.content)
            verified = verify_order(signed, custodian_keys=[c.home.public_key], lease_id=A)
            assert (verified.order.kind, verified.order.instance_id) == ("kill", node.instance_id)
            pushed = next(line for line in lines if line.startswith("data: "))
            # Not from_json: app.py's push re-serialises the document (not canonical JSON).
            assert SignedDocument.model_validate(json.loads(pushed[len("data: ") :])) == signed

        answer = node.renew()  # and a node that missed the push learns it at its next renewal
        assert (answer.grant, answer.withheld) == (None, "instance_ended")
        assert [o.digest() for o in answer.orders] == [signed.digest()]
    shown = admin.call("operator", "GET", f"/leases/{A}").json()
    assert [i["status"] for i in shown["instances"]] == ["killed"]
    assert shown["consumed"] == "13"  # a killed instance's whole allowance counts
    (entry,) = [e for e in admin.audit() if e["kind"] == "order_kill"]
    assert entry["actor"] == admin.actor("overseer@a")


def test_extension_request_approved_grows_budget_denied_leaves_it(admin: Admin) -> None:
    asked = admin.call(
        "borrower@a", "POST", f"/leases/{A}/extensions", {"units": "50", "reason": "more"}
    )
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["request_id"]
    assert asked.json() == {
        "request_id": request_id,
        "lease_id": A,
        "units": "50",
        "status": "pending",
    }
    approved = admin.call("operator", "POST", f"/extensions/{request_id}/approve")
    assert (approved.status_code, approved.json()["status"]) == (200, "approved")
    assert admin.call("borrower@a", "GET", f"/leases/{A}").json()["budget"] == "150"
    twice = admin.call("operator", "POST", f"/extensions/{request_id}/deny")
    assert (twice.status_code, twice.json()["reason"]) == (409, "extension_request_decided")

    other = admin.call(
        "borrower@a", "POST", f"/leases/{A}/extensions", {"units": 30, "reason": "x"}
    )
    denied = admin.call("operator", "POST", f"/extensions/{other.json()['request_id']}/deny")
    assert (denied.status_code, denied.json()["status"]) == (200, "denied")
    assert admin.call("borrower@a", "GET", f"/leases/{A}").json()["budget"] == "150"

    extended = admin.call("operator", "POST", f"/leases/{A}/extend", {"units": 5})
    assert (extended.status_code, extended.json()["budget"]) == (200, "155")
    zero = admin.call("operator", "POST", f"/leases/{A}/extend", {"units": 0})
    assert (zero.status_code, zero.json()["reason"]) == (400, "malformed_request")
    kinds = [
        (e["kind"], e["actor"]) for e in admin.audit() if e["kind"].startswith(("ext", "lease_ext"))
    ]
    assert kinds == [
        ("extension_requested", admin.actor("borrower@a")),
        ("extension_approved", admin.actor("operator")),
        ("extension_requested", admin.actor("borrower@a")),
        ("extension_denied", admin.actor("operator")),
        ("lease_extended", admin.actor("operator")),
    ]


def test_tokens_are_shown_once_audited_and_revocable(
    admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = admin.call("operator", "POST", "/tokens", {"role": "borrower", "lease_id": B})
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    token, token_id = made.json()["token"], made.json()["token_id"]
    assert made.json()["role"] == "borrower"
    assert made.json()["lease_id"] == B
    as_new = {"Authorization": f"Bearer {token}"}
    assert admin.http.get(f"/admin/v1/leases/{B}", headers=as_new).status_code == 200
    assert admin.http.get(f"/admin/v1/leases/{A}", headers=as_new).status_code == 403

    revoked = admin.call("operator", "DELETE", f"/tokens/{token_id}")
    assert (revoked.status_code, revoked.json()["revoked_at"]) == (200, "2026-11-28T12:00:00Z")
    assert "token" not in revoked.json()
    after = admin.http.get(f"/admin/v1/leases/{B}", headers=as_new)
    assert (after.status_code, after.json()["reason"]) == (401, "unauthenticated")
    assert admin.call("operator", "DELETE", f"/tokens/{token_id}").status_code == 200  # kept
    unknown = admin.call("operator", "DELETE", "/tokens/0123")
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "token_not_found")
    for body in (
        {"role": "operator", "lease_id": A},
        {"role": "borrower"},
        {"role": "borrower", "lease_id": MISSING},
    ):
        refused = admin.call("operator", "POST", "/tokens", body)
        assert (refused.status_code, refused.json()["reason"]) == (400, "token_request_invalid")

    export = admin.call("operator", "GET", "/audit")
    assert token not in export.text
    assert all(token not in record.getMessage() for record in caplog.records)
    entries = [e for e in admin.audit() if e["kind"].startswith("token_")]
    operator = admin.actor("operator")
    assert [(e["kind"], e["actor"], e["lease_id"], e["detail"]) for e in entries][-2:] == [
        ("token_created", operator, B, {"role": "borrower", "token_id": token_id}),
        ("token_revoked", operator, B, {"role": "borrower", "token_id": token_id}),
    ]  # revoked once: the second DELETE changed nothing and wrote nothing


def test_audit_export_is_the_chain_for_unbound_and_a_filtered_view_for_bound(
    admin: Admin,
) -> None:
    for kind in ("pause", "resume"):
        order = {"kind": kind, "reason": "maintenance"}
        assert admin.call("operator", "POST", f"/leases/{B}/orders", order).status_code == 201
    admin.call("overseer@a", "POST", f"/leases/{A}/orders", {"kind": "kill", "reason": "stop"})

    full = admin.call("overseer", "GET", "/audit")
    assert (full.headers["content-type"], full.headers["modellease-audit-scope"]) == (
        "application/jsonl",
        "all",
    )
    entries = [parse_export_line(line) for line in full.text.splitlines()]
    assert verify_chain(entries).entries == len(entries)
    assert [(e.kind, e.lease_id) for e in entries if e.kind.startswith(("lease", "order"))] == [
        ("lease_created", A),
        ("lease_created", B),
        ("order_pause", B),
        ("order_resume", B),
        ("order_kill", A),
    ]
    assert [e.actor for e in entries if e.kind.startswith("order")] == [
        admin.actor("operator"),
        admin.actor("operator"),
        admin.actor("overseer@a"),
    ]

    assert admin.call("overseer@a", "GET", "/audit").status_code == 403
    mine = admin.call("overseer@a", "GET", f"/audit?lease_id={A}")
    assert mine.headers["modellease-audit-scope"] == f"lease {A}"
    own = [parse_export_line(line) for line in mine.text.splitlines()]
    assert {e.lease_id for e in own} == {A}
    assert [e.hash for e in own] == [e.hash for e in entries if e.lease_id == A]
    with pytest.raises(AuditChainError):  # a filtered export is not a chain
        verify_chain(own)
