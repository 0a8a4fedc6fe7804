"""``modellease custodian serve`` starts the real service; a node talks to it over HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modellease.cli import app
from modellease.testing.server import free_port
from tests.cli.processes import first_health


@pytest.mark.parametrize(("workers", "access_log"), [(1, True), (2, True), (1, False)])
def test_serve_answers_health_and_prints_one_operator_token(
    tmp_path: Path, workers: int, access_log: bool
) -> None:
    home = tmp_path / "home"
    assert CliRunner().invoke(app, ["custodian", "init", "--home", str(home)]).exit_code == 0
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "modellease.cli",
        "custodian",
        "serve",
        "--home",
        str(home),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--access-log" if access_log else "--no-access-log",
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        health = first_health(server, port)
        assert health.json() == {"status": "ok"}
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert stderr.count("mlt_") == 1  # the first operator token, shown exactly once
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    messages = [line["message"] for line in logged]
    finished = [m for m in messages if m.startswith("Finished server process")]
    # Every worker that was serving shut down gracefully (one still starting when the
    # signal came may simply exit); none failed.
    assert 1 <= len(finished) <= workers
    assert not [line for line in logged if line["level"] == "error"]
    requests = [line for line in logged if line["logger"] == "uvicorn.access"]
    if access_log:
        assert {"method": "GET", "path": "/healthz", "status": 200}.items() <= requests[0].items()
    else:
        assert requests == []  # and the rest is still logged: see "Finished" above
    assert not any("mlt_" in json.dumps(line) for line in logged)  # the token is not logged
    assert (home / "custodian.sqlite3").exists()
    assert (home / "custodian.sqlite3").stat().st_size > 0
