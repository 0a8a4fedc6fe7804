"""Waiting for a server started as a real process (``custodian serve``, ``node serve``)."""

from __future__ import annotations

import subprocess
import time

import httpx

STARTUP_TIMEOUT_S = 60.0
POLL_S = 0.1


def first_health(
    process: subprocess.Popen[str], port: int, *, scheme: str = "http"
) -> httpx.Response:
    """``GET /healthz`` once the process answers on ``port``; fail with its stderr if it
    exits first, or if it does not answer within ``STARTUP_TIMEOUT_S``. Over ``https`` the
    certificate is not checked here (tests that care verify the node with the client SDK)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            return httpx.get(
                f"{scheme}://127.0.0.1:{port}/healthz", timeout=1.0, verify=scheme != "https"
            )
        except httpx.TransportError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(POLL_S)
