"""One writer at a time on a SQLite database, queued instead of polling.

SQLite lets one transaction write at a time; a connection that finds the lock taken retries
in SQLite's busy handler, which sleeps between tries (up to 100 ms a time). A waiting
writer so often slept long after the lock was free, and two worker processes took turns
with idle gaps. So every transaction on a SQLite file first takes this module's lock
(:class:`QueuedConnection` is the store's connection class), and a queued writer wakes as
soon as the last one ends:

* among one process's threads, a thread lock; a thread waits at most the busy timeout,
  then gets SQLite's own "database is locked" error (as a nested transaction on one thread
  would from SQLite);
* among processes (``custodian serve --workers``), an ``flock`` on a file beside the
  database (``<database>-writer``, mode 0600). The wait has no timeout: the holder is
  another transaction of this store, and the kernel frees the lock of a process that dies.
  Each process opens the file itself: a descriptor inherited across ``fork`` would be one
  lock shared by parent and child;
* a task may hold the lock ahead of its transactions (:meth:`WriterLock.held`): the
  renewal batcher waits for it on a worker thread, then runs its batch on the event loop,
  which then competes with no other thread of its process for the interpreter.

SQLite's own lock remains what guarantees one writer: a process that writes without this
lock (the ``sqlite3`` shell) is still kept out, by the busy handler as before.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path

import anyio.to_thread

SQLITE_BUSY_TIMEOUT_MS = 5000  # wait this long for another writer before failing

_HELD: ContextVar[WriterLock | None] = ContextVar("modellease_writer_lock_held", default=None)


class WriterLock:
    """One writer at a time on one SQLite file, across threads and processes (module doc)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd: int | None = None

    def acquire(self) -> None:
        if not self._threads.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise sqlite3.OperationalError("database is locked (waiting for this process's writer)")
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def release(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def try_acquire(self) -> bool:
        """Take the lock if it is free at once; never wait."""
        if not self._threads.acquire(blocking=False):
            return False
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._threads.release()
            return False
        except BaseException:
            self._threads.release()
            raise
        return True

    def wait_until_free(self) -> None:
        """Wait until the holder (if any) lets go, without keeping the lock."""
        self.acquire()
        self.release()

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold the lock for the calling task, e.g. to run a transaction on the event loop.

        The lock is taken only on the event loop, only when free: a wait happens on a worker
        thread, which does not keep the lock once it is free (the event loop may be busy for
        a while before it runs this task again, and the lock must not sit idle meanwhile:
        another process may use it). The task's own transactions then begin without waiting
        for it again (their connection sees it held in the task's context). Released when
        the block ends, however it ends.
        """
        while not self.try_acquire():
            await anyio.to_thread.run_sync(self.wait_until_free)  # never abandoned
        token = _HELD.set(self)
        try:
            yield
        finally:
            _HELD.reset(token)
            self.release()


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


class QueuedConnection(sqlite3.Connection):
    """A SQLite connection that holds its database's writer lock from BEGIN to its end."""

    writer: WriterLock | None = None  # set on connecting (store.engine), if it is a file
    _holding = False

    def begin(self) -> None:
        if self.writer is not None and _HELD.get() is not self.writer:
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
