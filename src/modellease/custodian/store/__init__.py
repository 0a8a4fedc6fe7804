"""The custodian's durable state: SQLAlchemy 2 tables, engines, and Alembic migrations.

SQLite (WAL) in the custodian home by default; any PostgreSQL URL works the same. The
schema is created and upgraded only by the migrations in ``migrations/``.
"""

from modellease.custodian.store.engine import connect, default_url, migrate
from modellease.custodian.store.models import (
    AuditEntry,
    Base,
    ExtensionRequestRow,
    GrantRow,
    InstanceRow,
    LeaseRow,
    NonceRow,
    OrderRow,
    ReportRow,
    TokenRow,
)

__all__ = [
    "AuditEntry",
    "Base",
    "ExtensionRequestRow",
    "GrantRow",
    "InstanceRow",
    "LeaseRow",
    "NonceRow",
    "OrderRow",
    "ReportRow",
    "TokenRow",
    "connect",
    "default_url",
    "migrate",
]
