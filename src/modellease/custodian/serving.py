"""Running the custodian's ASGI app with uvicorn, in one process or several.

One Python process uses one core for the work that matters here (the GIL), so
``custodian serve --workers N`` forks N processes, each accepting on its own listening
socket. Rules:

* with several workers, the sockets are one ``SO_REUSEPORT`` group on the same address, so
  the kernel spreads new connections evenly over the workers. One socket shared by all
  gives most connections to whichever worker happens to be waiting in ``accept``: measured
  with ``bench/custodian.py``, 60 of 64 keep-alive connections went to one of two workers,
  which left the other core idle. A listener already on the port is an error (the group is
  never joined to another server's);
* the parent binds the sockets, then forks; it closes each worker's socket once that
  worker is forked, so if a worker dies, its socket closes with it and new connections go
  to the others; each worker builds its own app with
  ``make_app()`` *after* the fork (database engines and event loops are never shared
  across processes); keys unlocked by the parent are inherited, never written anywhere;
* the parent forwards SIGTERM and SIGINT to the workers, each shuts down gracefully
  (uvicorn finishes the requests in flight), and the parent returns when all have exited;
  a worker that dies is not restarted: the others go on serving and the parent logs it;
* with one worker nothing is forked: uvicorn runs in the calling process;
* ``background`` (e.g. the expiry sweep) runs on a thread of the calling process, started
  only after the workers were forked (forking with threads running can copy held locks)
  and stopped when serving ends; it gets an event that is set when it must return;
* workers run in their own process group, so a Ctrl-C on the terminal reaches the parent
  only, which forwards it once;
* just before serving, start-up's garbage is collected and everything else built so far
  (modules, the app, its engine) is frozen out of the garbage collector's reach
  (``gc.freeze``): those objects live as long as the
  process, and a full collection would otherwise scan them all again and again. Measured
  with ``bench/custodian.py``: 10-20 % more renewals per second, p99 latency halved.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any, NoReturn

import uvicorn

log = logging.getLogger("modellease.custodian.serving")

LISTEN_BACKLOG = 2048
MAX_WORKERS = 64

AppFactory = Callable[[], Any]  # returns an ASGI application


def _bound(host: str, port: int, *, group: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if group:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def listening_sockets(host: str, port: int, count: int = 1) -> list[socket.socket]:
    """``count`` TCP sockets listening on ``host:port``, one per worker (see the module doc).

    Raises ``OSError`` (``EADDRINUSE``) if something already listens on the port.
    """
    if not 1 <= count <= MAX_WORKERS:
        raise ValueError(f"workers must be between 1 and {MAX_WORKERS}")
    if port and count > 1:
        _bound(host, port, group=False).close()  # a plain bind fails if anyone listens there
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = _bound(host, port, group=count > 1)
            port = sock.getsockname()[1]  # port 0: the others join the port the first got
            sockets.append(sock)
            sock.listen(LISTEN_BACKLOG)
            sock.set_inheritable(True)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _serve(app: Any, sock: socket.socket) -> None:  # noqa: ANN401 - any ASGI application
    config = uvicorn.Config(app, log_config=None, lifespan="off", timeout_graceful_shutdown=30)
    gc.collect()  # start-up's own garbage (e.g. cycles through tracebacks) is not kept
    gc.freeze()  # what is left lives as long as the process: never scanned again
    uvicorn.Server(config).run(sockets=[sock])


def run_workers(
    make_app: AppFactory,
    sockets: list[socket.socket],
    *,
    background: Callable[[threading.Event], None] | None = None,
) -> None:
    """Serve with one process per socket of :func:`listening_sockets` until SIGTERM or SIGINT."""
    if not 1 <= len(sockets) <= MAX_WORKERS:
        raise ValueError(f"workers must be between 1 and {MAX_WORKERS}")
    if len(sockets) == 1:
        with _running(background):
            _serve(make_app(), sockets[0])
        return
    pids = []
    for sock in sockets:
        pid = os.fork()
        if pid == 0:
            _worker(make_app, sock, others=[s for s in sockets if s is not sock])
        pids.append(pid)
        sock.close()  # the worker's now: if it dies, its socket (and its share) goes with it
    log.info("serving with %d worker processes: %s", len(pids), " ".join(map(str, pids)))

    def forward(signum: int, _frame: FrameType | None) -> None:
        for pid in pids:
            with suppress(ProcessLookupError):  # already gone
                os.kill(pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with _running(background):
            for pid in pids:
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                    log.error("worker %d exited with status %d", pid, code)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _worker(make_app: AppFactory, sock: socket.socket, *, others: list[socket.socket]) -> NoReturn:
    """A forked worker: serve on ``sock`` (not on the others' sockets), then exit."""
    code = 0
    try:
        os.setpgid(0, 0)
        for other in others:
            other.close()
        _serve(make_app(), sock)
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the SIGINT it handled, after a graceful shutdown
    except BaseException:
        log.exception("worker %d failed", os.getpid())
        code = 1
    finally:
        os._exit(code)


@contextmanager
def _running(background: Callable[[threading.Event], None] | None) -> Iterator[None]:
    """Run ``background`` on a thread for the duration of the block."""
    if background is None:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=background, args=(stop,), name="background", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
