"""What ``custodian/serving.py`` does before it serves: the sockets, the process's heap."""

from __future__ import annotations

import errno
import gc
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from modellease.custodian import serving
from modellease.custodian.serving import MAX_WORKERS, listening_sockets, run_workers


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()  # the rest of the test run collects as usual


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never called: uvicorn's run is replaced")


def test_start_up_objects_are_frozen_before_serving(
    unfrozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen_when_serving: list[int] = []

    def run(_server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        frozen_when_serving.append(gc.get_freeze_count())

    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert gc.get_freeze_count() == 0
    (sock,) = listening_sockets("127.0.0.1", 0)
    with sock:
        run_workers(lambda: _app, [sock])
    assert len(frozen_when_serving) == 1
    assert frozen_when_serving[0] > 0


def _accepted(sock: socket.socket) -> int:
    """How many connections are waiting in ``sock``'s accept queue (accepting them all)."""
    sock.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def test_several_workers_get_a_socket_each_and_a_share_of_the_connections() -> None:
    """One SO_REUSEPORT group: the kernel spreads connections, none waits on a busy worker."""
    sockets = listening_sockets("127.0.0.1", 0, 2)
    try:
        port = sockets[0].getsockname()[1]
        assert sockets[1].getsockname()[1] == port
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        counts = [_accepted(s) for s in sockets]
        for c in clients:
            c.close()
    finally:
        for s in sockets:
            s.close()
    assert sum(counts) == 64
    assert min(counts) >= 8  # by hash of the client port: 32 +- 4 expected; < 8 is ~1e-11


def test_a_port_someone_listens_on_is_refused_not_shared() -> None:
    (first,) = listening_sockets("127.0.0.1", 0)
    with first:
        port = first.getsockname()[1]
        for count in (1, 2):
            with pytest.raises(OSError, match="in use") as refused:
                listening_sockets("127.0.0.1", port, count)
            assert refused.value.errno == errno.EADDRINUSE
    group = listening_sockets("127.0.0.1", 0, 2)  # nor may a group be joined by another
    try:
        with pytest.raises(OSError, match="in use") as refused:
            listening_sockets("127.0.0.1", group[0].getsockname()[1], 2)
        assert refused.value.errno == errno.EADDRINUSE
    finally:
        for s in group:
            s.close()


@pytest.mark.parametrize("count", [0, MAX_WORKERS + 1])
def test_the_number_of_workers_is_bounded(count: int) -> None:
    with pytest.raises(ValueError, match="workers must be between 1 and"):
        listening_sockets("127.0.0.1", 0, count)


def test_the_parent_gives_each_worker_its_socket_and_keeps_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So a worker that dies takes its socket (its share of new connections) with it."""

    def serve_nothing(_app: Any, _sock: socket.socket) -> None:
        """The forked worker returns at once, then exits."""

    monkeypatch.setattr(serving, "_serve", serve_nothing)
    sockets = listening_sockets("127.0.0.1", 0, 2)
    run_workers(lambda: _app, sockets)
    assert [s.fileno() for s in sockets] == [-1, -1]  # closed here once forked
