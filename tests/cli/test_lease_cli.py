"""The operator's commands against the custodian's own store (SQLite in the home)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modellease.attestation import runtime_measurement
from modellease.cli import app
from modellease.cli.lease import parse_date, parse_duration
from modellease.errors import InvalidInputError
from modellease.testing.node import DEFAULT_CONFIG

ONNX_LIKE = b"\x08\x08\x12\x08" + bytes(range(256)) * 8


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def setup(tmp_path: Path, runner: CliRunner) -> tuple[Path, str, Path]:
    home = tmp_path / "home"
    assert runner.invoke(app, ["custodian", "init", "--home", str(home)]).exit_code == 0
    model = tmp_path / "m.onnx"
    model.write_bytes(ONNX_LIKE)
    assert runner.invoke(app, ["seal", str(model), "--home", str(home)]).exit_code == 0
    inspected = json.loads(runner.invoke(app, ["inspect", f"{model}.mlbundle", "--json"]).stdout)
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "allowed_tees": ["simulated"],
                "unsafe_allow_simulated": True,
                "simulated": {"measurement": [runtime_measurement(DEFAULT_CONFIG).hex()]},
            }
        )
    )
    return home, inspected["manifest"]["bundle_id"], policy


def test_lease_lifecycle(runner: CliRunner, setup: tuple[Path, str, Path]) -> None:
    home, bundle, policy = setup
    h = ["--home", str(home)]
    created = runner.invoke(
        app,
        [
            "lease",
            "create",
            "--bundle",
            bundle,
            "--budget",
            "100",
            "--policy",
            str(policy),
            "--ends",
            "2099-01-01",
            "--slice",
            "10",
            "--ttl",
            "30s",
            "--hard-expiry",
            "2m",
            "--id",
            "lease-a",
            *h,
        ],
    )
    assert created.exit_code == 0, created.output
    assert "created lease lease-a: 100 requests in slices of 10" in created.stdout
    listed = runner.invoke(app, ["lease", "list", *h])
    assert "lease-a" in listed.stdout
    assert runner.invoke(app, ["lease", "extend", "lease-a", "--units", "50", *h]).exit_code == 0
    shown = runner.invoke(app, ["lease", "show", "lease-a", *h])
    assert "budget 150 requests: committed 0" in shown.stdout
    paused = runner.invoke(app, ["lease", "pause", "lease-a", "--reason", "audit", *h])
    assert "pause order signed and recorded for lease lease-a" in paused.stdout
    assert runner.invoke(app, ["lease", "resume", "lease-a", "--reason", "done", *h]).exit_code == 0
    killed = runner.invoke(app, ["lease", "kill", "lease-a", "--reason", "contract ended", *h])
    assert killed.exit_code == 0
    assert "killed" in runner.invoke(app, ["lease", "list", *h]).stdout
    used = runner.invoke(app, ["usage", "lease-a", *h])
    assert "0 of 150 requests consumed" in used.stdout
    token = runner.invoke(app, ["token", "create", "--role", "borrower", "--lease", "lease-a", *h])
    assert token.exit_code == 0
    assert "mlt_" in token.stdout


def test_operator_errors_exit_with_one_line(
    runner: CliRunner, setup: tuple[Path, str, Path]
) -> None:
    home, bundle, policy = setup
    h = ["--home", str(home)]
    bad = runner.invoke(
        app,
        [
            "lease",
            "create",
            "--bundle",
            bundle,
            "--budget",
            "10",
            "--policy",
            str(policy),
            "--ends",
            "2099-01-01",
            "--ttl",
            "soon",
            *h,
        ],
    )
    assert bad.exit_code == 3
    assert "like 30s, 5m, 2h or 7d" in bad.stderr
    unknown = runner.invoke(app, ["lease", "show", "nope", *h])
    assert unknown.exit_code == 3
    assert "(unknown_lease)" in unknown.stderr
    no_bundle = runner.invoke(
        app,
        [
            "lease",
            "create",
            "--bundle",
            "0" * 32,
            "--budget",
            "10",
            "--policy",
            str(policy),
            "--ends",
            "2099-01-01",
            *h,
        ],
    )
    assert no_bundle.exit_code == 1
    assert "(unknown_bundle_key)" in no_bundle.stderr
    role = runner.invoke(app, ["token", "create", "--role", "admin", *h])
    assert role.exit_code == 3
    assert "unknown role 'admin'" in role.stderr
    assert runner.invoke(app, ["lease", "deny", "ext-none", *h]).exit_code == 3


def test_duration_and_date_parsing() -> None:
    half_minute, two_hours = parse_duration("30s"), parse_duration("2h")
    assert half_minute == timedelta(0, 30)
    assert two_hours == timedelta(hours=2)
    assert parse_date("2027-01-01").isoformat() == "2027-01-01T00:00:00+00:00"
    assert parse_date("2027-01-01T10:00:00Z").hour == 10
    with pytest.raises(InvalidInputError, match="not an ISO 8601 date"):
        parse_date("someday")
