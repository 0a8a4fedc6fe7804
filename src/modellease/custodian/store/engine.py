"""Engines for the custodian store, and migrating them to the current schema.

* SQLite: WAL journal, foreign keys on, a busy timeout instead of immediate "locked" errors,
  and every transaction begins with ``BEGIN IMMEDIATE``: it takes the write lock at once, so
  a transaction that reads and then writes never finds, at its first write, that another
  committed in between (SQLite would fail it at once, without waiting). This is what makes
  "lock the lease row first" true on SQLite, which has no row locks;
* SQLite writers queue on a :class:`WriterLock` before ``BEGIN IMMEDIATE``: a thread lock
  among one process's threads, then an ``flock`` on a file beside the database among
  processes (``custodian serve --workers``). SQLite's busy handler retries by sleeping (up
  to 100 ms a time), so a waiting writer often slept long after the lock was free, and two
  workers took turns with idle gaps; a queued writer instead wakes when the last one ends.
  SQLite's own lock remains what guarantees one writer; this lock only orders them;
* PostgreSQL: any ``postgresql+psycopg://`` URL;
* the schema comes only from the Alembic migrations shipped in this package; ``migrate``
  brings any database to the newest revision and is safe to run at every start.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
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


class WriterLock:
    """One writer at a time on one SQLite file, across this process's threads and processes.

    Waiting ends when the holder releases (no polling). In this process, a thread waits at
    most the busy timeout, then gets SQLite's own "database is locked" error (as a nested
    transaction on one thread would from SQLite). Between processes, the ``flock`` wait has
    no timeout: the holder is another transaction of this store, and the kernel frees the
    lock if its process dies. Each process opens the lock file itself (a descriptor
    inherited across ``fork`` would be one lock shared by parent and child).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd: int | None = None

    def acquire(self) -> None:
        if not self._threads.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise sqlite3.OperationalError("database is locked (waiting for this process's writer)")
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


_WRITER_LOCKS: dict[Path, WriterLock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def _forget_writer_locks() -> None:
    """In a forked child: start with no locks (a parent's may be held, its descriptor shared)."""
    global _WRITER_LOCKS_GUARD  # noqa: PLW0603 - a lock copied by fork may be held
    _WRITER_LOCKS_GUARD = threading.Lock()
    _WRITER_LOCKS.clear()


os.register_at_fork(after_in_child=_forget_writer_locks)


def writer_lock(database: Path) -> WriterLock:
    """This process's writer lock for the SQLite file ``database``."""
    path = database.resolve()
    with _WRITER_LOCKS_GUARD:
        lock = _WRITER_LOCKS.get(path)
        if lock is None:
            lock = _WRITER_LOCKS[path] = WriterLock(path.with_name(path.name + "-writer"))
        return lock


class _QueuedConnection(sqlite3.Connection):
    """A SQLite connection that holds its database's writer lock from BEGIN to its end."""

    writer: WriterLock | None = None  # set on connecting, if the database is a file
    _holding = False

    def begin(self) -> None:
        if self.writer is not None:
            self.writer.acquire()
            self._holding = True
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._let_go()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._let_go()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._let_go()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._let_go()

    def _let_go(self) -> None:
        if self._holding:
            self._holding = False
            assert self.writer is not None
            self.writer.release()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # noqa: ANN401 - DB-API object
    dbapi_connection.isolation_level = None  # the driver's own BEGIN off: _sqlite_begin's instead
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
    database = dbapi_connection.execute("PRAGMA database_list").fetchone()[2]
    if database:  # a file, not an in-memory database
        dbapi_connection.writer = writer_lock(Path(database))


def _sqlite_begin(connection: Any) -> None:  # noqa: ANN401 - SQLAlchemy Connection
    connection.connection.dbapi_connection.begin()


def connect(url: str) -> Engine:
    """Create an engine for ``url`` with the settings this store relies on."""
    if url.startswith("sqlite"):  # a file cannot drop the connection: no ping before each use
        engine = create_engine(url, connect_args={"factory": _QueuedConnection})
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
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
