"""The store on SQLite and PostgreSQL: migrations, UTC times, constraints."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from modellease.custodian import ledger
from modellease.custodian.records import instance_values, lease_values
from modellease.custodian.store import Base, LeaseRow, NonceRow, connect, default_url, migrate

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TABLES = {
    "alembic_version",
    "audit_log",
    "extension_requests",
    "grants",
    "instances",
    "leases",
    "nonces",
    "orders",
    "tokens",
    "usage_reports",
}


def lease(**extra: object) -> LeaseRow:
    values: dict[str, object] = {
        "id": "lease-1",
        "bundle_id": "0" * 32,
        "unit": "requests",
        "slice_size": 10,
        "heartbeat_ttl_s": 30,
        "hard_expiry_s": 60,
        "ends_at": NOW + timedelta(days=30),
        "budget": 2**63 - 1,
        "paused": False,
        "killed": False,
        "committed": 0,
        "settled": 0,
        "active_usage": 0,
        "policy_json": "{}",
        "overseers_json": "[]",
        "auto_approve_per_day": None,
        "created_at": NOW,
    }
    return LeaseRow(**(values | extra))


def test_migrate_creates_the_schema_and_is_idempotent(store_url: str) -> None:
    engine = connect(store_url)
    migrate(engine)
    migrate(engine)
    assert set(sa.inspect(engine).get_table_names()) == TABLES
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    engine.dispose()


def test_times_round_trip_as_utc_and_counts_as_64_bit(store_url: str) -> None:
    engine = connect(store_url)
    migrate(engine)
    paris = timezone(timedelta(hours=1))
    with Session(engine) as s, s.begin():
        s.add(lease(created_at=NOW.astimezone(paris)))
    with Session(engine) as s:
        row = s.get(LeaseRow, "lease-1")
        assert row is not None
        assert row.created_at == NOW
        assert row.created_at.tzinfo is not None
        assert row.budget == 2**63 - 1
    engine.dispose()


def test_naive_times_and_dangling_references_are_refused(store_url: str) -> None:
    engine = connect(store_url)
    migrate(engine)
    with Session(engine) as s, pytest.raises(StatementError, match="timezone-aware"), s.begin():
        s.add(lease(created_at=NOW.replace(tzinfo=None)))
    with Session(engine) as s, pytest.raises(IntegrityError), s.begin():
        s.add(NonceRow(value="ab" * 32, lease_id="no-such-lease", issued_at=NOW, expires_at=NOW))
    with Session(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(LeaseRow)) == 0
    engine.dispose()


def test_default_url_is_sqlite_in_the_home(tmp_path: object) -> None:
    assert default_url(tmp_path).endswith("/custodian.sqlite3")  # type: ignore[arg-type]
    assert default_url(tmp_path).startswith("sqlite+pysqlite:///")  # type: ignore[arg-type]


def test_migrations_match_the_models(store_url: str) -> None:
    """The schema built by the migrations is exactly what the models declare."""
    engine = connect(store_url)
    migrate(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_sqlite_transactions_take_the_write_lock_when_they_begin(tmp_path: Path) -> None:
    """So a transaction that reads, then writes, never loses a race it cannot retry."""
    path = tmp_path / "store.sqlite3"
    engine = connect(f"sqlite+pysqlite:///{path}")
    migrate(engine)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        # Nothing is executed inside: a deferred BEGIN would hold no lock yet.
        with (
            engine.begin(),
            pytest.raises(sqlite3.OperationalError, match="database is locked"),
        ):
            other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("ROLLBACK")
    finally:
        other.close()
        engine.dispose()


def test_the_ledger_columns_are_written_as_the_ledger_decided_them() -> None:
    # lease_values/instance_values are what every write of ledger state stores (batches
    # and single operations alike): every field the ledger owns, the status as its text.
    now = datetime(2026, 1, 1, tzinfo=UTC)
    lease = ledger.open_lease(
        lease_id="lease-1",
        terms=ledger.LeaseTerms(
            unit=ledger.Unit.REQUESTS,
            slice_size=10,
            heartbeat_ttl=timedelta(seconds=30),
            hard_expiry=timedelta(seconds=60),
            ends_at=datetime(2099, 1, 1, tzinfo=UTC),
        ),
        budget=100,
    )
    enrolment = ledger.enrol(lease, instance_id="inst-1", now=now)
    assert lease_values(enrolment.lease) == {
        "budget": 100,
        "paused": False,
        "killed": False,
        "committed": 10,
        "settled": 0,
        "active_usage": 0,
    }
    assert instance_values(enrolment.instance) == {
        "status": "active",
        "allowance": 10,
        "usage": 0,
        "grant_seq": enrolment.instance.grant_seq,
        "valid_until": enrolment.instance.valid_until,
        "paused": False,
        "ended_at": None,
    }
