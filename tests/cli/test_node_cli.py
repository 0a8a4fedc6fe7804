"""``modellease node config`` and ``modellease node serve``: a real node process enrols on a
real custodian, serves, and stops gracefully; refusals are one clear line and an exit code."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modellease.attestation import policy_from_mapping, runtime_measurement
from modellease.cli import app
from modellease.client import pinned_client, verify_node
from modellease.enclave.config import NodeConfig, render_config
from modellease.protocol import SignedDocument, UsageReport
from modellease.testing.digits import DigitsModel
from modellease.testing.server import free_port
from tests.cli.processes import first_health
from tests.integration.custodian_server import Custodian, running_custodian
from tests.integration.node_harness import dev_policy, lease_for, seal


@pytest.fixture
def custodian(tmp_path: Path) -> Iterator[Custodian]:
    with running_custodian(tmp_path, f"sqlite+pysqlite:///{tmp_path / 'c.sqlite3'}") as c:
        c.clock.now = datetime.now(UTC)  # the node process reads the real clock
        yield c


def write_config(custodian: Custodian, out: Path) -> NodeConfig:
    result = CliRunner().invoke(
        app,
        [
            "node",
            "config",
            "--custodian",
            custodian.url,
            "--home",
            str(custodian.home.path),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    config = NodeConfig.from_bytes(out.read_bytes())
    assert f"simulated measurement: {runtime_measurement(config.raw).hex()}" in result.stdout
    return config


def serve_command(config: Path, lease: str, bundle: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "modellease.cli",
        "node",
        "serve",
        "--config",
        str(config),
        "--lease",
        lease,
        "--bundle",
        str(bundle),
        "--port",
        str(port),
        "--threads",
        "1",
        *extra,
    ]


def test_node_serve_enrols_serves_and_stops_gracefully(
    custodian: Custodian, digits_model: DigitsModel, tmp_path: Path
) -> None:
    config = write_config(custodian, tmp_path / "node.json")
    assert config.custodian_key == custodian.home.public_key
    sealed = seal(custodian, digits_model.onnx, tmp_path, name="digits", suffix=".onnx")
    lease = lease_for(custodian, sealed, config)
    port = free_port()
    node = subprocess.Popen(
        serve_command(tmp_path / "node.json", lease, sealed.path, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = first_health(node, port, scheme="https")
        assert health.json() == {"status": "serving"}
        verified = verify_node(
            f"https://127.0.0.1:{port}",
            policy=policy_from_mapping(dev_policy(config)),
            trusted_custodians=[custodian.home.public_key],
            expect_model_sha256=hashlib.sha256(digits_model.onnx).hexdigest(),
        )
        with pinned_client(verified) as http:
            answer = http.post(
                "/v1/infer", json={"inputs": {"X": digits_model.test_inputs[:4].tolist()}}
            )
        assert answer.json()["outputs"]["label"] == digits_model.test_labels[:4].tolist()
    finally:
        node.send_signal(signal.SIGTERM)
        stdout, stderr = node.communicate(timeout=30)
    assert node.returncode in (0, -signal.SIGTERM)
    assert "serving digits on https://127.0.0.1:" in stdout
    assert "WARNING: simulated TEE: INSECURE" in stderr
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    messages = [line["message"] for line in logged]
    assert "enrolled" in messages
    assert "model loaded" in messages
    assert not [line for line in logged if line["level"] == "error"]
    _lease, reported = custodian.plane.usage(lease)  # the final report, sent at shutdown
    [(_instance, last)] = reported
    assert last is not None
    signed = SignedDocument.from_json(last.signed_json.encode())
    assert UsageReport.model_validate_json(signed.payload).counters.requests == 1


def test_node_serve_insecure_http_is_plain_and_says_so(
    custodian: Custodian, digits_model: DigitsModel, tmp_path: Path
) -> None:
    config = write_config(custodian, tmp_path / "node.json")
    sealed = seal(custodian, digits_model.onnx, tmp_path, name="digits", suffix=".onnx")
    lease = lease_for(custodian, sealed, config)
    port = free_port()
    node = subprocess.Popen(
        serve_command(tmp_path / "node.json", lease, sealed.path, port, "--insecure-http"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first_health(node, port).json() == {"status": "serving"}
    finally:
        node.send_signal(signal.SIGTERM)
        stdout, stderr = node.communicate(timeout=30)
    assert "serving digits on http://127.0.0.1:" in stdout
    assert "WARNING: --insecure-http: plain HTTP, INSECURE" in stderr
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any("insecure, development only" in line["message"] for line in logged)


def test_node_serve_without_a_custodian_fails_in_one_line(
    custodian: Custodian, digits_model: DigitsModel, tmp_path: Path
) -> None:
    sealed = seal(custodian, digits_model.onnx, tmp_path, name="digits", suffix=".onnx")
    nowhere = f"http://127.0.0.1:{free_port()}"
    raw = render_config(custodian_url=nowhere, custodian_key=custodian.home.public_key)
    (tmp_path / "node.json").write_bytes(raw)
    result = CliRunner().invoke(
        app,
        [
            "node",
            "serve",
            "--config",
            str(tmp_path / "node.json"),
            "--lease",
            "l",
            "--bundle",
            str(sealed.path),
        ],
    )
    assert result.exit_code == 1
    assert f"cannot reach the custodian at {nowhere}" in result.output
    assert len(result.output.strip().splitlines()) == 2  # the warning, then the error


def test_a_tampered_bundle_is_refused_before_enrolling(
    tmp_path: Path, custodian: Custodian
) -> None:
    config = write_config(custodian, tmp_path / "node.json")
    bundle = tmp_path / "absent.mlbundle"
    bundle.write_bytes(b"not a bundle at all")
    result = CliRunner().invoke(
        app,
        [
            "node",
            "serve",
            "--config",
            str(tmp_path / "node.json"),
            "--lease",
            "l",
            "--bundle",
            str(bundle),
        ],
    )
    assert result.exit_code == 3
    assert "not_a_bundle" in result.output
    assert config.custodian_url == custodian.url


def test_a_bad_node_configuration_exits_3(tmp_path: Path) -> None:
    (tmp_path / "node.json").write_text(json.dumps({"format": "modellease/node-config/v1"}))
    result = CliRunner().invoke(
        app,
        [
            "node",
            "serve",
            "--config",
            str(tmp_path / "node.json"),
            "--lease",
            "l",
            "--bundle",
            str(tmp_path / "b"),
        ],
    )
    assert result.exit_code == 3
    assert "node_config_invalid" in result.output
    assert "custodian_url" in result.output


def test_node_config_refuses_a_bad_overseer_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert CliRunner().invoke(app, ["custodian", "init", "--home", str(home)]).exit_code == 0
    result = CliRunner().invoke(
        app,
        [
            "node",
            "config",
            "--custodian",
            "http://c",
            "--home",
            str(home),
            "--overseer",
            "xyz",
            "--out",
            str(tmp_path / "n.json"),
        ],
    )
    assert result.exit_code == 3
    assert not (tmp_path / "n.json").exists()
