"""Bearer tokens and the role/permission kernel of the custodian's admin API (``/admin/v1``).

The HTTP layer does three things per request, in this order: ``authenticate`` the bearer
token (401 on failure), ``authorize`` the principal for one :class:`Permission` on one lease
(403 on failure), then act. :func:`authorize` is a pure function (no database, no clock);
the token functions only read and write :class:`~modellease.custodian.store.TokenRow` in the
caller's session and never commit: the caller appends the audit entry (``token created``,
``token revoked``) in the same transaction and commits.

Rules:

* there are three roles: ``operator`` (everything), ``overseer`` (read leases, usage and the
  audit log, and kill), ``borrower`` (read its own lease's status and usage, and ask for an
  extension of it). An overseer cannot pause, resume, extend, decide extension requests,
  create leases or tokens; a borrower can do nothing else. The table below is the whole
  policy: a permission not listed for a role is refused, and so is everything for a role
  the table does not know;
* **lease scope**: a token may be bound to one lease. A borrower token always is, an
  operator token never is, an overseer token may be. A bound principal may act only with
  ``lease_id`` equal to its own lease; a global action (``lease_id=None``: list every lease,
  export the whole audit log) is refused to it. An unbound principal may act on any lease;
* routes call :func:`authorize` before looking the lease up, so a refused principal learns
  nothing about whether another lease exists;
* a token is ``mlt_<id>_<secret>``: ``id`` is 16 random bytes and ``secret`` 32 random bytes
  from :mod:`secrets`, both lower-case hex. It is shown once, by :func:`create_token`. The
  store keeps only the SHA-256 (hex) of the whole token string; the id is the row's primary
  key, so a lookup is one indexed read. 256 random bits make a slow password hash
  pointless: nobody can guess a preimage of the stored digest;
* :func:`authenticate` compares the SHA-256 digests with the one constant-time helper,
  :func:`modellease._hazmat.ct_equal`, and does the same comparison (against a dummy digest)
  when the id is unknown;
* a missing, empty, malformed, unknown, wrong or revoked token all raise the same
  :class:`AuthenticationError` with the same message: a failure never says which part was
  wrong. A stored row whose role or lease binding breaks these rules is refused the same
  way (fail closed) and logged as an error;
* revocation is permanent: a token with any ``revoked_at`` is refused, whatever ``now`` is,
  so a clock stepping back never revives it. Revoking twice keeps the first time;
* caller bugs (a naive ``now``, a role or permission that is not one of the enums, an
  operator principal bound to a lease) raise ``TypeError``/``ValueError``.

Permissions (``x``: granted; ``own``: only with ``lease_id`` equal to the token's lease)::

    permission          operator  overseer          borrower
    lease.create           x         -                 -
    lease.read             x         x (own if bound)  own
    lease.list             x         x (own if bound)  -
    lease.extend           x         -                 -
    usage.read             x         x (own if bound)  own
    audit.export           x         x (own if bound)  -
    order.kill             x         x (own if bound)  -
    order.pause            x         -                 -
    order.resume           x         -                 -
    extension.request      x         -                 own
    extension.decide       x         -                 -
    token.create           x         -                 -
    token.revoke           x         -                 -
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar, Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

from modellease._hazmat import ct_equal
from modellease.custodian.store.models import LeaseRow, TokenRow
from modellease.errors import InvalidInputError
from modellease.protocol.messages import IDENTIFIER_PATTERN

log = logging.getLogger("modellease.custodian.auth")

TOKEN_PREFIX: Final = "mlt"  # noqa: S105 - not a secret: lets scanners recognise a leaked token
TOKEN_ID_BYTES: Final = 16  # 128 random bits: ids never collide, and are not guessable either
TOKEN_SECRET_BYTES: Final = 32  # 256 random bits: the part that authenticates
TOKEN_LENGTH: Final = len(TOKEN_PREFIX) + 2 + 2 * (TOKEN_ID_BYTES + TOKEN_SECRET_BYTES)
_TOKEN = re.compile(
    rf"{TOKEN_PREFIX}_(?P<id>[0-9a-f]{{{2 * TOKEN_ID_BYTES}}})_[0-9a-f]{{{2 * TOKEN_SECRET_BYTES}}}"
)
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
# Compared against when the token id is unknown, so that path does the same work.
_DUMMY_DIGEST: Final = hashlib.sha256(b"modellease/auth/unknown-token").hexdigest()


# --------------------------------------------------------------------------- errors
class AuthenticationError(InvalidInputError):
    """No valid bearer token: missing, malformed, unknown, wrong or revoked (opaque; HTTP 401).

    Defined here for now; to be moved into ``modellease.errors``.
    """

    reason = "unauthenticated"

    MESSAGE: ClassVar[str] = "a valid bearer token is required"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class PermissionDeniedError(InvalidInputError):
    """The token's role or lease binding does not allow this action (HTTP 403).

    Defined here for now; to be moved into ``modellease.errors``.
    """

    reason = "permission_denied"

    def __init__(self, message: str, *, permission: Permission) -> None:
        super().__init__(message)
        self.permission = permission


class TokenRequestError(InvalidInputError):
    """A token cannot be created with this role and lease binding (HTTP 400).

    Defined here for now; to be moved into ``modellease.errors``.
    """

    reason = "token_request_invalid"


class UnknownTokenError(InvalidInputError):
    """No token with this id (HTTP 404). Defined here for now; to be moved into ``errors``."""

    reason = "token_not_found"


# --------------------------------------------------------------------------- the policy
class Role(StrEnum):
    """Who holds a token. Stored as its value in ``tokens.role``."""

    OPERATOR = "operator"
    OVERSEER = "overseer"
    BORROWER = "borrower"


class Permission(StrEnum):
    """Every action of the admin API. Closed: a route without one cannot be authorised."""

    LEASE_CREATE = "lease.create"
    LEASE_READ = "lease.read"
    LEASE_LIST = "lease.list"
    LEASE_EXTEND = "lease.extend"
    USAGE_READ = "usage.read"
    AUDIT_EXPORT = "audit.export"
    ORDER_KILL = "order.kill"
    ORDER_PAUSE = "order.pause"
    ORDER_RESUME = "order.resume"
    EXTENSION_REQUEST = "extension.request"
    EXTENSION_DECIDE = "extension.decide"
    TOKEN_CREATE = "token.create"  # noqa: S105 - a permission name, not a secret
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 - a permission name, not a secret


ROLE_PERMISSIONS: Final[Mapping[Role, frozenset[Permission]]] = MappingProxyType(
    {
        Role.OPERATOR: frozenset(Permission),  # everything, by definition
        Role.OVERSEER: frozenset(
            {
                Permission.LEASE_READ,
                Permission.LEASE_LIST,
                Permission.USAGE_READ,
                Permission.AUDIT_EXPORT,
                Permission.ORDER_KILL,
            }
        ),
        Role.BORROWER: frozenset(
            {
                Permission.LEASE_READ,
                Permission.USAGE_READ,
                Permission.EXTENSION_REQUEST,
            }
        ),
    }
)


def _scope_problem(role: Role, lease_id: str | None) -> str | None:
    """Why ``role`` may not be bound to ``lease_id`` (None when it may)."""
    if role is Role.OPERATOR and lease_id is not None:
        return "an operator token cannot be bound to a lease"
    if role is Role.BORROWER and lease_id is None:
        return "a borrower token must be bound to a lease"
    if lease_id is not None and not _IDENTIFIER.fullmatch(lease_id):
        return "the lease id is not a valid identifier"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who is calling: an authenticated token's id, role and lease binding."""

    token_id: str
    role: Role
    lease_id: str | None

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            raise TypeError(f"role must be a Role, not {type(self.role).__name__}")
        problem = _scope_problem(self.role, self.lease_id)
        if problem is not None:
            raise ValueError(problem)

    @property
    def actor(self) -> str:
        """How the audit log names this principal (never the token itself)."""
        return f"{self.role.value}:{self.token_id}"


def authorize(principal: Principal, permission: Permission, *, lease_id: str | None) -> None:
    """Return if ``principal`` may use ``permission`` on ``lease_id``, else raise.

    ``lease_id`` is the lease the action touches, or ``None`` for a global action.
    Raises :class:`PermissionDeniedError`; ``TypeError`` for arguments of the wrong type.
    """
    if not isinstance(principal, Principal):
        raise TypeError(f"principal must be a Principal, not {type(principal).__name__}")
    if not isinstance(permission, Permission):
        raise TypeError(f"permission must be a Permission, not {type(permission).__name__}")
    if permission not in ROLE_PERMISSIONS.get(principal.role, frozenset()):
        raise PermissionDeniedError(
            f"a {principal.role.value} token may not {permission.value}", permission=permission
        )
    if principal.lease_id is not None and lease_id != principal.lease_id:
        raise PermissionDeniedError(
            f"this token may {permission.value} only on its own lease", permission=permission
        )


# --------------------------------------------------------------------------- tokens
def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def create_token(
    session: Session, *, role: Role, lease_id: str | None, now: datetime
) -> tuple[str, TokenRow]:
    """Make a new token; return it (shown once, never stored) and its row (added, flushed).

    Raises :class:`TokenRequestError` if ``role`` cannot be bound as asked or the lease does
    not exist. The caller audits and commits.
    """
    if not isinstance(role, Role):
        raise TypeError(f"role must be a Role, not {type(role).__name__}")
    _require_aware(now)
    problem = _scope_problem(role, lease_id)
    if problem is not None:
        raise TokenRequestError(problem)
    if lease_id is not None and session.get(LeaseRow, lease_id) is None:
        raise TokenRequestError(f"no lease {lease_id!r}")
    token_id = secrets.token_hex(TOKEN_ID_BYTES)
    token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_hex(TOKEN_SECRET_BYTES)}"
    row = TokenRow(
        id=token_id,
        role=role.value,
        lease_id=lease_id,
        token_sha256=_digest(token),
        created_at=now,
        revoked_at=None,
    )
    session.add(row)
    session.flush()
    return token, row


def bootstrap_operator_token(session: Session, *, now: datetime) -> tuple[str, TokenRow] | None:
    """Create an operator token if no unrevoked one exists (``custodian init``/``serve``).

    Returns ``None`` when an operator token is already active. Not a lock: two processes
    bootstrapping the same empty store at once may both create one.
    """
    active = session.scalar(
        sa.select(TokenRow.id)
        .where(TokenRow.role == Role.OPERATOR.value, TokenRow.revoked_at.is_(None))
        .limit(1)
    )
    if active is not None:
        return None
    return create_token(session, role=Role.OPERATOR, lease_id=None, now=now)


def bearer_from_authorization(header: str | None) -> str | None:
    """The token in an ``Authorization: Bearer <token>`` header value (RFC 6750 §2.1), or None.

    The scheme is case-insensitive (RFC 9110 §11.1); anything else gives ``None``, which
    :func:`authenticate` refuses like any other bad token.
    """
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip(" ")


def authenticate(session: Session, bearer: str | None, *, now: datetime) -> Principal:
    """The principal holding ``bearer`` (the token itself, without ``Bearer``), or raise.

    Every failure raises the same :class:`AuthenticationError`. Read-only. ``now`` is
    checked but not otherwise used yet: revocation ignores the clock, and tokens do not
    expire (the table has no expiry column).
    """
    _require_aware(now)
    if bearer is None or len(bearer) != TOKEN_LENGTH:
        raise AuthenticationError
    match = _TOKEN.fullmatch(bearer)
    if match is None:
        raise AuthenticationError
    row = session.get(TokenRow, match["id"])
    expected = _DUMMY_DIGEST if row is None else row.token_sha256
    if not ct_equal(expected.encode(), _digest(bearer).encode()):
        raise AuthenticationError
    if row is None or row.revoked_at is not None:
        raise AuthenticationError
    try:
        return Principal(token_id=row.id, role=Role(row.role), lease_id=row.lease_id)
    except ValueError:
        log.error("token %s has an invalid role or lease binding in the store; refused", row.id)  # noqa: TRY400 - no traceback wanted
        raise AuthenticationError from None


def revoke_token(session: Session, token_id: str, *, now: datetime) -> TokenRow:
    """Revoke ``token_id`` for good; revoking it again keeps the first time. Returns the row.

    Raises :class:`UnknownTokenError`. The caller audits and commits.
    """
    _require_aware(now)
    row = session.get(TokenRow, token_id)
    if row is None:
        raise UnknownTokenError("no such token")
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
    return row


__all__ = [
    "ROLE_PERMISSIONS",
    "TOKEN_ID_BYTES",
    "TOKEN_LENGTH",
    "TOKEN_PREFIX",
    "TOKEN_SECRET_BYTES",
    "AuthenticationError",
    "Permission",
    "PermissionDeniedError",
    "Principal",
    "Role",
    "TokenRequestError",
    "UnknownTokenError",
    "authenticate",
    "authorize",
    "bearer_from_authorization",
    "bootstrap_operator_token",
    "create_token",
    "revoke_token",
]
