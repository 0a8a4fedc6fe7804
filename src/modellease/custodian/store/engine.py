"""Engines for the custodian store, and migrating them to the current schema.

* SQLite: WAL journal, foreign keys on, a busy timeout instead of immediate "locked" errors;
* PostgreSQL: any ``postgresql+psycopg://`` URL;
* the schema comes only from the Alembic migrations shipped in this package; ``migrate``
  brings any database to the newest revision and is safe to run at every start.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

SQLITE_BUSY_TIMEOUT_MS = 5000  # wait this long for another writer before failing


def default_url(home: Path) -> str:
    """The embedded default: a SQLite database inside the custodian home."""
    return f"sqlite+pysqlite:///{home / 'custodian.sqlite3'}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # noqa: ANN401 - DB-API object
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def connect(url: str) -> Engine:
    """Create an engine for ``url`` with the settings this store relies on."""
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def migrate(engine: Engine) -> None:
    """Upgrade the database behind ``engine`` to the newest schema revision."""
    config = Config()
    script_location = resources.files("modellease.custodian.store").joinpath("migrations")
    config.set_main_option("script_location", str(script_location))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
