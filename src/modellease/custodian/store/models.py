"""Tables of the control plane. Values the ledger owns are stored exactly as it returns them.

* counts are 64-bit integers (the ledger caps units at 2^63 - 1);
* times are timezone-aware UTC;
* signed documents are stored as their exact wire JSON, never re-serialised;
* the audit log is append-only and hash-chained (``custodian/audit.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("only timezone-aware datetimes are stored")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class LeaseRow(Base):
    __tablename__ = "leases"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    bundle_id: Mapped[str] = mapped_column(String(32))
    unit: Mapped[str] = mapped_column(String(16))
    slice_size: Mapped[int] = mapped_column(BigInteger)
    heartbeat_ttl_s: Mapped[int] = mapped_column(Integer)
    hard_expiry_s: Mapped[int] = mapped_column(Integer)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    budget: Mapped[int] = mapped_column(BigInteger)
    paused: Mapped[bool] = mapped_column(Boolean)
    killed: Mapped[bool] = mapped_column(Boolean)
    committed: Mapped[int] = mapped_column(BigInteger)
    settled: Mapped[int] = mapped_column(BigInteger)
    active_usage: Mapped[int] = mapped_column(BigInteger)
    policy_json: Mapped[str] = mapped_column(Text)  # the appraisal policy, canonical JSON
    overseers_json: Mapped[str] = mapped_column(Text)  # JSON list of Ed25519 keys (hex)
    auto_approve_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class InstanceRow(Base):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    allowance: Mapped[int] = mapped_column(BigInteger)
    usage: Mapped[int] = mapped_column(BigInteger)
    grant_seq: Mapped[int] = mapped_column(BigInteger)
    valid_until: Mapped[datetime] = mapped_column(UtcDateTime)
    paused: Mapped[bool] = mapped_column(Boolean)
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    tee: Mapped[str] = mapped_column(String(16))
    insecure: Mapped[bool] = mapped_column(Boolean)
    measurements_json: Mapped[str] = mapped_column(Text)
    kem_key: Mapped[str] = mapped_column(String(64))
    signing_key: Mapped[str] = mapped_column(String(64))
    signing_key_id: Mapped[str] = mapped_column(String(71), unique=True)  # sha256:<hex>
    last_report_seq: Mapped[int] = mapped_column(BigInteger)
    last_report_digest: Mapped[str] = mapped_column(String(64))


class NonceRow(Base):
    __tablename__ = "nonces"

    value: Mapped[str] = mapped_column(String(64), primary_key=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class GrantRow(Base):
    __tablename__ = "grants"

    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    signed_json: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReportRow(Base):
    __tablename__ = "usage_reports"

    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    signed_json: Mapped[str] = mapped_column(Text)
    response_json: Mapped[str] = mapped_column(Text)  # the answer given: retries get it again
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OrderRow(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    instance_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    signed_json: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ExtensionRequestRow(Base):
    __tablename__ = "extension_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), index=True)
    instance_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    units: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | denied
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class TokenRow(Base):
    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # operator | overseer | borrower
    lease_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    lease_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail_json: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
