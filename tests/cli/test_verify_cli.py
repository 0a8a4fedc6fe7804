"""``modellease verify URL``: against a real node on loopback over attested TLS, it prints
what the node proved, or the first check that failed (exit 3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modellease._hazmat import SigningKey
from modellease.attestation import policy_from_mapping
from modellease.cli import app
from modellease.client import check_response, pinned_client, verify_node
from modellease.testing.digits import DigitsModel
from tests.integration.custodian_server import Custodian, running_custodian
from tests.integration.node_harness import (
    RunningNode,
    boot_node,
    dev_policy,
    lease_for,
    node_config,
    running_node,
    seal,
)


@pytest.fixture
def node(
    tmp_path: Path, digits_model: DigitsModel
) -> Iterator[tuple[Custodian, RunningNode, Path]]:
    with running_custodian(tmp_path, f"sqlite+pysqlite:///{tmp_path / 'c.sqlite3'}") as custodian:
        sealed = seal(custodian, digits_model.onnx, tmp_path, name="digits", suffix=".onnx")
        config = node_config(custodian)
        booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps(dev_policy(config)))
        with running_node(custodian, booted, renew=False, tls=True) as running:
            yield custodian, running, policy


def run(url: str, policy: Path, custodian: str, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app, ["verify", url, "--policy", str(policy), "--custodian", custodian, *extra]
    )
    return result.exit_code, result.stdout, result.stderr


def test_verify_prints_what_the_node_proved(
    node: tuple[Custodian, RunningNode, Path], digits_model: DigitsModel
) -> None:
    custodian, running, policy = node
    key = custodian.home.public_key.hex()
    code, stdout, stderr = run(running.url, policy, key)
    assert code == 0, stderr
    assert "simulated (INSECURE)" in stdout
    assert running.booted.manifest.model.sha256[:32] in stdout  # long values fold
    assert "this node proved NOTHING" in stderr
    code, stdout, _ = run(running.url, policy, key, "--json")
    assert code == 0
    document = json.loads(stdout)
    assert document["verified"] is True
    assert document["node"]["model"]["custodian_public_key"] == key
    assert document["node"]["lease_id"] == "lease-node"
    assert document["node"]["model"]["sha256"] == running.booted.manifest.model.sha256


def test_verify_names_the_first_check_that_failed(
    node: tuple[Custodian, RunningNode, Path], tmp_path: Path
) -> None:
    custodian, running, policy = node
    stranger = SigningKey.generate().public_bytes().hex()
    code, _, stderr = run(running.url, policy, stranger)
    assert code == 3
    assert "refused (manifest_untrusted)" in stderr
    production = tmp_path / "production.json"
    production.write_text(
        json.dumps(
            {
                "allowed_tees": ["tdx"],
                "tdx": {k: ["00" * 48] for k in ("mrtd", "rtmr0", "rtmr1", "rtmr2")},
            }
        )
    )
    code, stdout, _ = run(running.url, production, custodian.home.public_key.hex(), "--json")
    assert code == 3
    assert json.loads(stdout) | {"message": ""} == {
        "verified": False,
        "step": "1. tee-allowed",
        "reason": "simulated_refused",
        "message": "",
    }
    code, _, stderr = run(running.url, policy, "not-a-key")
    assert code == 2
    assert "Invalid value for --custodian" in stderr


def test_receipt_verify_checks_a_receipt_offline(
    node: tuple[Custodian, RunningNode, Path], digits_model: DigitsModel, tmp_path: Path
) -> None:
    custodian, running, policy = node
    code, stdout, _ = run(running.url, policy, custodian.home.public_key.hex(), "--json")
    assert code == 0
    (tmp_path / "node.json").write_text(stdout)
    verified = verify_node(
        running.url,
        policy=policy_from_mapping(json.loads(policy.read_text())),
        trusted_custodians=[custodian.home.public_key],
    )
    with pinned_client(verified) as http:
        answer = http.post(
            "/v1/infer", json={"inputs": {"X": digits_model.test_inputs[:1].tolist()}}
        )
        proof = check_response(verified, answer, http=http).proof
    (tmp_path / "receipt").write_bytes(proof.to_json())
    (tmp_path / "request").write_bytes(answer.request.content)
    (tmp_path / "response").write_bytes(answer.content)
    files = ["--node", str(tmp_path / "node.json"), "--request", str(tmp_path / "request")]
    result = CliRunner().invoke(
        app,
        [
            "receipt",
            "verify",
            str(tmp_path / "receipt"),
            *files,
            "--response",
            str(tmp_path / "response"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    checked = document["receipt"]
    assert (checked["units"], checked["lease_id"]) == ("1", "lease-node")
    assert document["insecure"] is True  # the node's evidence is simulated
    assert (document["request_checked"], document["response_checked"]) == (True, True)
    assert "WARNING: simulated TEE: this node's receipts prove NOTHING" in result.stderr
    result = CliRunner().invoke(app, ["receipt", "verify", str(tmp_path / "receipt"), *files])
    assert result.exit_code == 0
    assert "receipt valid" in result.stdout
    (tmp_path / "other").write_bytes(answer.content + b" ")
    result = CliRunner().invoke(
        app,
        [
            "receipt",
            "verify",
            str(tmp_path / "receipt"),
            *files,
            "--response",
            str(tmp_path / "other"),
        ],
    )
    assert result.exit_code == 3
    assert "error (receipt_mismatch): the receipt is for another response body" in result.stderr
    (tmp_path / "garbled").write_bytes(proof.to_json()[:-1])
    result = CliRunner().invoke(app, ["receipt", "verify", str(tmp_path / "garbled"), *files])
    assert result.exit_code == 3
    assert "error (document_malformed): not a receipt proof" in result.stderr
