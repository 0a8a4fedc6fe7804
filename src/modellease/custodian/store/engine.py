"""Engines for the custodian store, and migrating them to the current schema.

* SQLite: WAL journal, foreign keys on, a busy timeout instead of immediate "locked" errors,
  and every transaction begins with ``BEGIN IMMEDIATE``: it takes the write lock at once, so
  a transaction that reads and then writes never finds, at its first write, that another
  committed in between (SQLite would fail it at once, without waiting). This is what makes
  "lock the lease row first" true on SQLite, which has no row locks;
* SQLite writers queue on the database's writer lock before ``BEGIN IMMEDIATE``
  (:mod:`~modellease.custodian.store.writer_lock`);
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
from sqlalchemy import Engine, create_engine, event, make_url

from modellease.custodian.store.writer_lock import (
    SQLITE_BUSY_TIMEOUT_MS,
    QueuedConnection,
    WriterLock,
    writer_lock,
)


def default_url(home: Path) -> str:
    """The embedded default: a SQLite database inside the custodian home."""
    return f"sqlite+pysqlite:///{home / 'custodian.sqlite3'}"


def _sqlite_pragmas(dbapi_connection: Any) -> None:  # noqa: ANN401 - DB-API object
    dbapi_connection.isolation_level = None  # the driver's own BEGIN off: _sqlite_begin's instead
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def engine_writer_lock(engine: Engine) -> WriterLock | None:
    """This process's writer lock of ``engine``'s database: a SQLite file's, else ``None``.

    The one lock for that file in this process, whoever asks (the connections, a renewal
    batch holding it ahead): a second lock on the same file would wait for the first."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return None
    return writer_lock(Path(database))


def _sqlite_begin(connection: Any) -> None:  # noqa: ANN401 - SQLAlchemy Connection
    connection.connection.dbapi_connection.begin()


def connect(url: str) -> Engine:
    """Create an engine for ``url`` with the settings this store relies on."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    # A file cannot drop the connection: no ping before each use.
    engine = create_engine(url, connect_args={"factory": QueuedConnection})

    def on_connect(dbapi_connection: QueuedConnection, _record: object) -> None:
        _sqlite_pragmas(dbapi_connection)
        # Looked up at each connection, not kept: a process forked since has its own.
        dbapi_connection.writer = engine_writer_lock(engine)

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def migrate(engine: Engine) -> None:
    """Upgrade the database behind ``engine`` to the newest schema revision."""
    config = Config()
    script_location = resources.files("modellease.custodian.store").joinpath("migrations")
    config.set_main_option("script_location", str(script_location))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
