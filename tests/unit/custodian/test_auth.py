"""Admin API auth: the whole role x permission x lease matrix, and bearer tokens on both stores."""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from modellease.custodian.auth import (
    ROLE_PERMISSIONS,
    TOKEN_LENGTH,
    AuthenticationError,
    Permission,
    PermissionDeniedError,
    Principal,
    Role,
    TokenRequestError,
    UnknownTokenError,
    authenticate,
    authorize,
    bearer_from_authorization,
    bootstrap_operator_token,
    create_token,
    revoke_token,
)
from modellease.custodian.store import LeaseRow, TokenRow, connect, migrate
from modellease.errors import InvalidInputError

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LEASE_A = "lease-a"
LEASE_B = "lease-b"
TOKEN_FORMAT = re.compile(r"mlt_([0-9a-f]{32})_([0-9a-f]{64})")

# The policy, written out again independently of the module's table. "own" scoping is
# derived from the principal's lease binding, below.
ALL_PERMISSIONS = {
    "lease.create",
    "lease.read",
    "lease.list",
    "lease.extend",
    "usage.read",
    "audit.export",
    "order.kill",
    "order.pause",
    "order.resume",
    "extension.request",
    "extension.decide",
    "token.create",
    "token.revoke",
}
EXPECTED = {
    "operator": ALL_PERMISSIONS,
    "overseer": {"lease.read", "lease.list", "usage.read", "audit.export", "order.kill"},
    "borrower": {"lease.read", "usage.read", "extension.request"},
}

OPERATOR = Principal(token_id="op", role=Role.OPERATOR, lease_id=None)
OVERSEER = Principal(token_id="ov", role=Role.OVERSEER, lease_id=None)
OVERSEER_OF_A = Principal(token_id="ova", role=Role.OVERSEER, lease_id=LEASE_A)
BORROWER_OF_A = Principal(token_id="bra", role=Role.BORROWER, lease_id=LEASE_A)
PRINCIPALS = [OPERATOR, OVERSEER, OVERSEER_OF_A, BORROWER_OF_A]
TARGETS = [LEASE_A, LEASE_B, None]


# --------------------------------------------------------------------------- the kernel
def test_the_permission_set_is_closed_and_the_table_is_the_expected_one() -> None:
    assert {p.value for p in Permission} == ALL_PERMISSIONS
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert {r.value: {p.value for p in ps} for r, ps in ROLE_PERMISSIONS.items()} == EXPECTED
    assert all(isinstance(ps, frozenset) for ps in ROLE_PERMISSIONS.values())
    with pytest.raises(TypeError):
        ROLE_PERMISSIONS[Role.BORROWER] = frozenset(Permission)  # type: ignore[index]


@pytest.mark.parametrize(
    ("principal", "permission", "target"),
    list(itertools.product(PRINCIPALS, Permission, TARGETS)),
    ids=lambda v: "global" if v is None else getattr(v, "token_id", str(v)),
)
def test_matrix_of_roles_permissions_and_leases(
    principal: Principal, permission: Permission, target: str | None
) -> None:
    allowed = permission.value in EXPECTED[principal.role.value] and (
        principal.lease_id is None or target == principal.lease_id
    )
    if allowed:
        authorize(principal, permission, lease_id=target)
    else:
        with pytest.raises(PermissionDeniedError) as caught:
            authorize(principal, permission, lease_id=target)
        assert caught.value.reason == "permission_denied"
        assert caught.value.permission is permission


@pytest.mark.parametrize(
    "permission",
    [
        Permission.LEASE_EXTEND,
        Permission.EXTENSION_DECIDE,
        Permission.ORDER_RESUME,
        Permission.ORDER_PAUSE,
        Permission.LEASE_CREATE,
        Permission.TOKEN_CREATE,
        Permission.TOKEN_REVOKE,
    ],
)
@pytest.mark.parametrize("overseer", [OVERSEER, OVERSEER_OF_A])
def test_overseer_cannot_extend_approve_resume_pause_or_mint(
    overseer: Principal, permission: Permission
) -> None:
    for target in TARGETS:
        with pytest.raises(PermissionDeniedError, match="overseer token may not"):
            authorize(overseer, permission, lease_id=target)


def test_overseer_can_kill_and_read_usage_of_its_lease() -> None:
    for permission in (Permission.ORDER_KILL, Permission.USAGE_READ):
        authorize(OVERSEER_OF_A, permission, lease_id=LEASE_A)
        authorize(OVERSEER, permission, lease_id=LEASE_B)


def test_borrower_of_lease_a_is_denied_everything_on_lease_b() -> None:
    for permission in Permission:
        with pytest.raises(PermissionDeniedError):
            authorize(BORROWER_OF_A, permission, lease_id=LEASE_B)
    with pytest.raises(PermissionDeniedError, match="only on its own lease"):
        authorize(BORROWER_OF_A, Permission.USAGE_READ, lease_id=LEASE_B)


def test_bound_tokens_are_denied_global_actions() -> None:
    for principal, permission in itertools.product([OVERSEER_OF_A, BORROWER_OF_A], Permission):
        with pytest.raises(PermissionDeniedError):
            authorize(principal, permission, lease_id=None)


def test_borrower_can_only_read_its_lease_and_ask_for_more() -> None:
    allowed = {p for p in Permission if _permits(BORROWER_OF_A, p, LEASE_A)}
    assert allowed == {Permission.LEASE_READ, Permission.USAGE_READ, Permission.EXTENSION_REQUEST}


def test_no_role_holds_a_permission_the_operator_lacks() -> None:
    for permissions in ROLE_PERMISSIONS.values():
        assert permissions <= ROLE_PERMISSIONS[Role.OPERATOR]


def _permits(principal: Principal, permission: Permission, lease_id: str | None) -> bool:
    try:
        authorize(principal, permission, lease_id=lease_id)
    except PermissionDeniedError:
        return False
    return True


def test_authorize_refuses_stringly_typed_arguments() -> None:
    with pytest.raises(TypeError, match="permission must be a Permission"):
        authorize(OPERATOR, "lease.read", lease_id=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="principal must be a Principal"):
        authorize("operator", Permission.LEASE_READ, lease_id=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("role", "lease_id", "error"),
    [
        (Role.OPERATOR, LEASE_A, "operator token cannot be bound"),
        (Role.BORROWER, None, "borrower token must be bound"),
        (Role.BORROWER, "", "not a valid identifier"),
        (Role.OVERSEER, "Lease A", "not a valid identifier"),
    ],
)
def test_principal_refuses_impossible_bindings(
    role: Role, lease_id: str | None, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        Principal(token_id="t", role=role, lease_id=lease_id)


def test_principal_refuses_a_role_string_and_names_itself_for_the_audit_log() -> None:
    with pytest.raises(TypeError, match="role must be a Role"):
        Principal(token_id="t", role="operator", lease_id=None)  # type: ignore[arg-type]
    assert BORROWER_OF_A.actor == "borrower:bra"


def test_errors_are_input_errors_with_stable_distinct_reasons() -> None:
    classes: list[type[InvalidInputError]] = [
        AuthenticationError,
        PermissionDeniedError,
        TokenRequestError,
        UnknownTokenError,
    ]
    assert all(issubclass(c, InvalidInputError) for c in classes)
    assert [c.reason for c in classes] == [
        "unauthenticated",
        "permission_denied",
        "token_request_invalid",
        "token_not_found",
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER  abc ", "abc"),
        ("Bearer", ""),
        ("Basic abc", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_is_taken_only_from_a_bearer_authorization_header(
    header: str | None, expected: str | None
) -> None:
    assert bearer_from_authorization(header) == expected


# --------------------------------------------------------------------------- tokens in the store
@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = connect(store_url)
    migrate(engine)
    with Session(engine) as s, s.begin():
        s.add_all([_lease(LEASE_A), _lease(LEASE_B)])
    yield engine
    engine.dispose()


def _lease(lease_id: str) -> LeaseRow:
    return LeaseRow(
        id=lease_id,
        bundle_id="0" * 32,
        unit="requests",
        slice_size=10,
        heartbeat_ttl_s=30,
        hard_expiry_s=60,
        ends_at=NOW + timedelta(days=30),
        budget=1000,
        paused=False,
        killed=False,
        committed=0,
        settled=0,
        active_usage=0,
        policy_json="{}",
        overseers_json="[]",
        auto_approve_per_day=None,
        created_at=NOW,
    )


def _mint(engine: Engine, role: Role, lease_id: str | None = None) -> tuple[str, str]:
    with Session(engine) as s, s.begin():
        token, row = create_token(s, role=role, lease_id=lease_id, now=NOW)
        return token, row.id


def _refusal(engine: Engine, bearer: str | None) -> AuthenticationError:
    with Session(engine) as s, pytest.raises(AuthenticationError) as caught:
        authenticate(s, bearer, now=NOW)
    return caught.value


def test_tokens_authenticate_as_their_role_and_lease(engine: Engine) -> None:
    cases = [
        (Role.OPERATOR, None),
        (Role.OVERSEER, None),
        (Role.OVERSEER, LEASE_A),
        (Role.BORROWER, LEASE_B),
    ]
    minted = [(_mint(engine, role, lease), role, lease) for role, lease in cases]
    with Session(engine) as s:
        for (token, token_id), role, lease in minted:
            assert TOKEN_FORMAT.fullmatch(token)
            assert len(token) == TOKEN_LENGTH
            principal = authenticate(s, token, now=NOW)
            assert principal == Principal(token_id=token_id, role=role, lease_id=lease)
            assert authenticate(s, bearer_from_authorization(f"Bearer {token}"), now=NOW) == (
                principal
            )


def test_missing_malformed_unknown_wrong_and_revoked_tokens_fail_alike(engine: Engine) -> None:
    token, token_id = _mint(engine, Role.OPERATOR)
    revoked, revoked_id = _mint(engine, Role.BORROWER, LEASE_A)
    with Session(engine) as s, s.begin():
        revoke_token(s, revoked_id, now=NOW)
    secret = token.rsplit("_", 1)[1]
    other_secret = ("0" if secret[0] != "0" else "1") + secret[1:]
    bad = [
        None,
        "",
        " ",
        "mlt_",
        f"Bearer {token}",  # the header, not the token
        token.upper(),
        token + "\n",
        token + "0",
        token[:-1],
        " " + token[1:],
        token.replace("mlt_", "mlx_"),
        token.replace(f"_{secret}", f"-{secret}"),
        f"mlt_{token_id}_{other_secret}",  # right id, wrong secret
        f"mlt_{'0' * 32}_{secret}",  # unknown id, a real secret
        f"mlt_{token_id}_{'é' * 64}",  # same length, not ASCII
        f"mlt_{token_id}_{secret[:-1]}\u0660",  # an Arabic-Indic digit
        revoked,
        "x" * 10_000,
    ]
    refusals = [_refusal(engine, b) for b in bad]
    assert {str(e) for e in refusals} == {AuthenticationError.MESSAGE}
    assert {e.reason for e in refusals} == {"unauthenticated"}
    with Session(engine) as s:  # the real one still works
        assert authenticate(s, token, now=NOW).token_id == token_id


def test_stored_row_holds_no_plaintext_token(engine: Engine) -> None:
    token, token_id = _mint(engine, Role.BORROWER, LEASE_A)
    secret = token.rsplit("_", 1)[1]
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM tokens")).mappings().all()
    assert len(rows) == 1
    values = [str(v) for v in rows[0].values()]
    for value in values:
        assert token not in value
        assert secret not in value
        assert secret[:16] not in value  # not even a piece of it
    assert rows[0]["id"] == token_id
    assert rows[0]["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert rows[0]["revoked_at"] is None


def test_tokens_differ_each_time(engine: Engine) -> None:
    minted = [_mint(engine, Role.OPERATOR) for _ in range(25)]
    tokens = [t for t, _ in minted]
    parts = [TOKEN_FORMAT.fullmatch(t) for t in tokens]
    assert all(parts)
    assert len(set(tokens)) == len({p[1] for p in parts if p}) == len({p[2] for p in parts if p})
    assert len(set(tokens)) == 25
    assert all(len(bytes.fromhex(p[2])) >= 32 for p in parts if p)
    with Session(engine) as s:
        digests = s.scalars(sa.select(TokenRow.token_sha256)).all()
    assert len(set(digests)) == 25


@pytest.mark.parametrize(
    ("role", "lease_id", "error"),
    [
        (Role.BORROWER, None, "borrower token must be bound"),
        (Role.OPERATOR, LEASE_A, "operator token cannot be bound"),
        (Role.OVERSEER, "../etc", "not a valid identifier"),
        (Role.BORROWER, "lease-z", "no lease 'lease-z'"),
    ],
)
def test_token_binding_is_checked_before_anything_is_stored(
    engine: Engine, role: Role, lease_id: str | None, error: str
) -> None:
    with Session(engine) as s, pytest.raises(TokenRequestError, match=error) as caught, s.begin():
        create_token(s, role=role, lease_id=lease_id, now=NOW)
    assert caught.value.reason == "token_request_invalid"
    with Session(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(TokenRow)) == 0


def test_caller_bugs_raise_type_and_value_errors(engine: Engine) -> None:
    token, token_id = _mint(engine, Role.OPERATOR)
    naive = NOW.replace(tzinfo=None)
    with Session(engine) as s:
        with pytest.raises(TypeError, match="role must be a Role"):
            create_token(s, role="operator", lease_id=None, now=NOW)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timezone-aware"):
            create_token(s, role=Role.OPERATOR, lease_id=None, now=naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            authenticate(s, token, now=naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            revoke_token(s, token_id, now=naive)


def test_revoked_token_stays_revoked_even_when_the_clock_steps_back(engine: Engine) -> None:
    token, token_id = _mint(engine, Role.OVERSEER, LEASE_A)
    with Session(engine) as s, s.begin():
        assert revoke_token(s, token_id, now=NOW + timedelta(hours=1)).revoked_at == (
            NOW + timedelta(hours=1)
        )
    with Session(engine) as s, s.begin():  # again, earlier: the first time is kept
        assert revoke_token(s, token_id, now=NOW).revoked_at == NOW + timedelta(hours=1)
    for now in (NOW - timedelta(days=1), NOW, NOW + timedelta(days=1)):
        with Session(engine) as s, pytest.raises(AuthenticationError):
            authenticate(s, token, now=now)


def test_revoking_an_unknown_token_changes_nothing(engine: Engine) -> None:
    token, _ = _mint(engine, Role.OPERATOR)
    with Session(engine) as s, pytest.raises(UnknownTokenError, match="no such token") as caught:
        revoke_token(s, "0" * 32, now=NOW)
    assert caught.value.reason == "token_not_found"
    with Session(engine) as s:
        assert authenticate(s, token, now=NOW).role is Role.OPERATOR


def test_bootstrap_mints_an_operator_token_only_while_none_is_active(engine: Engine) -> None:
    _mint(engine, Role.OVERSEER)  # other roles do not count
    with Session(engine) as s, s.begin():
        created = bootstrap_operator_token(s, now=NOW)
        assert created is not None
        first, first_id = created[0], created[1].id
    with Session(engine) as s, s.begin():
        assert bootstrap_operator_token(s, now=NOW) is None
        assert authenticate(s, first, now=NOW).role is Role.OPERATOR
        revoke_token(s, first_id, now=NOW)
    with Session(engine) as s, s.begin():
        again = bootstrap_operator_token(s, now=NOW)
    assert again is not None
    assert again[0] != first
    with Session(engine) as s:
        assert authenticate(s, again[0], now=NOW).role is Role.OPERATOR


@pytest.mark.parametrize(
    ("role", "lease_id"),
    [("admin", None), ("borrower", None), ("operator", LEASE_A), ("", None)],
)
def test_tampered_role_or_binding_in_the_store_fails_closed(
    engine: Engine, caplog: pytest.LogCaptureFixture, role: str, lease_id: str | None
) -> None:
    token = f"mlt_{'a' * 32}_{'b' * 64}"
    with Session(engine) as s, s.begin():
        s.add(
            TokenRow(
                id="a" * 32,
                role=role,
                lease_id=lease_id,
                token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                created_at=NOW,
                revoked_at=None,
            )
        )
    with caplog.at_level(logging.ERROR, logger="modellease.custodian.auth"):
        assert str(_refusal(engine, token)) == AuthenticationError.MESSAGE
    assert "invalid role or lease binding" in caplog.text
    assert token not in caplog.text
    assert "b" * 64 not in caplog.text
