"""Waiting for a server started as a real process (``custodian serve``, ``node serve``)."""

from __future__ import annotations

import subprocess
import time

import httpx

STARTUP_TIMEOUT_S = 60.0
POLL_S = 0.1


def first_health(process: subprocess.Popen[str], port: int) -> httpx.Response:
    """``GET /healthz`` once the process answers on ``port``; fail with its stderr if it
    exits first, or if it does not answer within ``STARTUP_TIMEOUT_S``."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
        except httpx.TransportError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(POLL_S)
