"""Alembic environment: migrations always run on a connection handed in by ``migrate``."""

from __future__ import annotations

from alembic import context

from modellease.custodian.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `migrate()` runs migrations
    raise RuntimeError("run migrations through modellease.custodian.store.migrate()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
