"""SQLite writers queue on the store's writer lock (``store/engine.py``) before ``BEGIN``.

The lock orders writers across threads and processes; SQLite's own lock still guarantees
one writer at a time. What must hold: it is taken for every transaction and given back at
its end however it ends, a transaction that would wait on itself fails as SQLite's would,
and a process that dies holding it does not block the others.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from modellease.custodian.store import connect
from modellease.custodian.store import engine as store_engine
from modellease.custodian.store import writer_lock as store_writer_lock


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    made = connect(f"sqlite+pysqlite:///{tmp_path / 'store.sqlite3'}")
    with made.begin() as c:
        c.execute(text("CREATE TABLE t (n INTEGER)"))
    return made


def _lock_file(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite3-writer"


def _held_elsewhere(path: Path) -> bool:
    """Whether some other open file holds the lock (a fresh descriptor cannot take it)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_lock_is_a_private_file_beside_the_database(engine: Engine, tmp_path: Path) -> None:
    mode = _lock_file(tmp_path).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_it_is_held_for_the_transaction_and_given_back_however_it_ends(
    engine: Engine, tmp_path: Path
) -> None:
    lock = _lock_file(tmp_path)
    with engine.begin() as c:
        c.execute(text("INSERT INTO t VALUES (1)"))
        assert _held_elsewhere(lock)
    assert not _held_elsewhere(lock)  # committed
    held_when_failing: list[bool] = []

    def fail() -> None:
        with engine.begin():
            held_when_failing.append(_held_elsewhere(lock))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert held_when_failing == [True]
    assert not _held_elsewhere(lock)  # rolled back
    with engine.connect() as c:
        c.execute(text("SELECT 1"))
        assert _held_elsewhere(lock)  # reads begin with BEGIN IMMEDIATE too
    assert not _held_elsewhere(lock)  # the connection went back to the pool


def test_a_second_thread_waits_for_the_first_and_then_sees_its_write(engine: Engine) -> None:
    seen: list[int] = []
    started = threading.Event()

    def second() -> None:
        started.set()
        with engine.begin() as c:  # waits here until the first commits
            seen.append(c.execute(text("SELECT count(*) FROM t")).scalar_one())

    with engine.begin() as c:
        c.execute(text("INSERT INTO t VALUES (1)"))
        thread = threading.Thread(target=second)
        thread.start()
        started.wait()
        c.execute(text("INSERT INTO t VALUES (2)"))
    thread.join()
    assert seen == [2]


def test_a_transaction_that_would_wait_on_its_own_thread_fails_as_sqlite_would(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_writer_lock, "SQLITE_BUSY_TIMEOUT_MS", 50)
    with engine.begin() as outer:
        outer.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(Exception, match="database is locked") as refused, engine.begin():
            pass
        assert isinstance(refused.value.__cause__ or refused.value, sqlite3.OperationalError)
    with engine.begin() as c:  # nothing was left held
        assert c.execute(text("SELECT count(*) FROM t")).scalar_one() == 1


def test_a_process_that_dies_holding_the_lock_does_not_block_the_others(
    engine: Engine, tmp_path: Path
) -> None:
    held_r, held_w = os.pipe()
    die_r, die_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own lock (forked state is forgotten), held, then gone
        code = 1
        try:
            engine.dispose(close=False)
            conn = engine.connect()
            conn.execute(text("INSERT INTO t VALUES (1)"))  # begins: takes the lock
            os.write(held_w, b"x")
            os.read(die_r, 1)
            code = 0
        finally:
            os._exit(code)  # no commit, no rollback, no close
    assert os.read(held_r, 1) == b"x"
    assert _held_elsewhere(_lock_file(tmp_path))
    os.write(die_w, b"x")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not _held_elsewhere(_lock_file(tmp_path))
    with engine.begin() as c:
        assert c.execute(text("SELECT count(*) FROM t")).scalar_one() == 0  # never committed
    for fd in (held_r, held_w, die_r, die_w):
        os.close(fd)


def test_an_in_memory_database_has_no_lock_file(tmp_path: Path) -> None:
    memory = connect("sqlite+pysqlite://")
    with memory.begin() as c:
        assert c.execute(text("SELECT 1")).scalar_one() == 1
    assert list(tmp_path.iterdir()) == []


def test_a_task_holding_the_lock_runs_its_transactions_without_waiting_for_itself(
    engine: Engine, tmp_path: Path
) -> None:
    lock = store_writer_lock.writer_lock(tmp_path / "store.sqlite3")

    async def batch() -> list[bool]:
        async with lock.held():
            with engine.begin() as c:  # on the event loop, inside held(): no second take
                c.execute(text("INSERT INTO t VALUES (1)"))
            after_commit = _held_elsewhere(_lock_file(tmp_path))  # still the task's
        return [after_commit, _held_elsewhere(_lock_file(tmp_path))]

    assert asyncio.run(batch()) == [True, False]
    with engine.begin() as c:
        assert c.execute(text("SELECT count(*) FROM t")).scalar_one() == 1


def test_a_task_waits_for_the_holder_without_taking_the_lock_meanwhile(
    engine: Engine, tmp_path: Path
) -> None:
    lock = store_writer_lock.writer_lock(tmp_path / "store.sqlite3")
    order: list[str] = []

    async def batch(other_done: threading.Event) -> None:
        async with lock.held():
            assert other_done.is_set()
            order.append("task")

    done = threading.Event()
    with engine.begin() as c:  # another thread of this process holds it
        assert not lock.try_acquire()

        def run_task() -> None:
            asyncio.run(batch(done))

        task = threading.Thread(target=run_task)
        task.start()
        c.execute(text("INSERT INTO t VALUES (1)"))
        order.append("holder")
        done.set()
    task.join()
    assert order == ["holder", "task"]
    assert lock.try_acquire()  # nothing left held
    lock.release()


def test_the_lock_is_not_taken_while_another_process_holds_it(
    engine: Engine, tmp_path: Path
) -> None:
    lock = store_writer_lock.writer_lock(tmp_path / "store.sqlite3")
    other = os.open(_lock_file(tmp_path), os.O_RDWR)  # another open file: as another process
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        assert not lock.try_acquire()
        fcntl.flock(other, fcntl.LOCK_UN)
        assert lock.try_acquire()  # the failed try left nothing held in this process
        lock.release()
    finally:
        os.close(other)


def test_a_writer_that_ignores_the_lock_is_still_kept_out_by_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E.g. the sqlite3 shell: our BEGIN fails after the busy timeout and holds nothing."""
    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 50)
    database = tmp_path / "store.sqlite3"
    engine = connect(f"sqlite+pysqlite:///{database}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (n INTEGER)"))
    shell = sqlite3.connect(database, isolation_level=None)
    try:
        shell.execute("BEGIN IMMEDIATE")
        with pytest.raises(Exception, match="database is locked"), engine.begin():
            pass
        assert not _held_elsewhere(_lock_file(tmp_path))
    finally:
        shell.close()
    with engine.begin() as c:
        assert c.execute(text("SELECT count(*) FROM t")).scalar_one() == 0


def test_the_connections_and_a_batch_holding_it_ahead_share_one_lock(engine: Engine) -> None:
    """Two lock objects on one file would wait for each other: there is one per process."""
    with engine.connect() as c:
        c.execute(text("SELECT 1"))
        raw = c.connection.dbapi_connection
        assert isinstance(raw, store_writer_lock.QueuedConnection)
        assert raw.writer is not None
        assert raw.writer is store_engine.engine_writer_lock(engine)
