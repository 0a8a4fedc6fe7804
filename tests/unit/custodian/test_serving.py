"""What ``custodian/serving.py`` does to the process before it serves."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from modellease.custodian.serving import listening_socket, run_workers


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
    with listening_socket("127.0.0.1", 0) as sock:
        run_workers(lambda: _app, sock, workers=1)
    assert len(frozen_when_serving) == 1
    assert frozen_when_serving[0] > 0
