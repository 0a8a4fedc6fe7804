"""Run an ASGI app with uvicorn on a free loopback port in a background thread.

Used by the integration tests and the demo to talk to the real custodian server over real
HTTP without a second process. Startup is awaited; shutdown is graceful.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

STARTUP_TIMEOUT_S = 10.0
STARTUP_POLL_S = 0.01


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    app: Any,  # noqa: ANN401 - any ASGI app
    *,
    lifespan: bool = False,
    port: int | None = None,
    tls: Callable[[], ssl.SSLContext] | None = None,
) -> Iterator[str]:
    """Serve ``app`` on ``http://127.0.0.1:<port>`` until the block ends; yield the URL.

    ``lifespan`` runs the app's startup and shutdown (the node's renewer lives there);
    ``port`` (default: a free one) lets a test bring a service back where it was; ``tls``
    makes the server context, and the URL is then ``https://``."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on" if lifespan else "off",
        ssl_context_factory=(lambda _config, _default: tls()) if tls is not None else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="modellease-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(STARTUP_POLL_S)
    try:
        yield f"{'https' if tls is not None else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_S)
