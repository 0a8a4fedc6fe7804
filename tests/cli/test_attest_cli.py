"""``modellease attest verify``: verified claims or the refusing step, with exit code 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modellease.attestation import SimulatedAttester, TeeKind, produce_evidence, runtime_measurement
from modellease.cli import app
from tests.unit.attestation.support import NONCE, case, claims_for, collateral, dcap_evidence

MEASUREMENT = runtime_measurement(b"cli test")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def sim_files(tmp_path: Path) -> tuple[Path, Path]:
    evidence = tmp_path / "evidence.json"
    ev = produce_evidence(SimulatedAttester(MEASUREMENT), claims_for(TeeKind.SIMULATED))
    evidence.write_bytes(ev.to_json())
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'allowed_tees = ["simulated"]\nunsafe_allow_simulated = true\n'
        f'[simulated]\nmeasurement = ["{MEASUREMENT.hex()}"]\n'
    )
    return evidence, policy


def test_verified_simulated_evidence(runner: CliRunner, sim_files: tuple[Path, Path]) -> None:
    evidence, policy = sim_files
    args = ["attest", "verify", str(evidence), "--policy", str(policy), "--nonce", NONCE.hex()]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "INSECURE" in result.stderr
    assert "verified" in result.stdout
    assert MEASUREMENT.hex()[:40] in result.stdout.replace("\n", "")
    doc = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert doc["verified"] is True
    assert doc["result"]["insecure"] is True
    assert doc["result"]["kem_public_key"] == "11" * 32
    assert doc["result"]["measurements"] == {"measurement": MEASUREMENT.hex()}


def test_wrong_nonce_is_refused_with_its_step(
    runner: CliRunner, sim_files: tuple[Path, Path]
) -> None:
    evidence, policy = sim_files
    args = ["attest", "verify", str(evidence), "--policy", str(policy), "--nonce", "ff" * 32]
    result = runner.invoke(app, args)
    assert result.exit_code == 3
    assert "refused at step 3. nonce (nonce_mismatch)" in result.stderr
    doc = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert doc == {
        "verified": False,
        "step": "3. nonce",
        "reason": "nonce_mismatch",
        "message": "the claims do not carry the nonce this verifier issued",
    }


def test_real_sgx_quote_with_collateral_directory_and_time(
    runner: CliRunner, tmp_path: Path
) -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    ev = dcap_evidence(c, with_collateral=False)
    (tmp_path / "ev.json").write_bytes(ev.to_json())
    (tmp_path / "coll" / "sgx").mkdir(parents=True)
    (tmp_path / "coll" / "sgx" / "00A067110000.json").write_bytes(collateral(c["collateral"]))
    (tmp_path / "p.json").write_text(
        json.dumps(
            {
                "allowed_tees": ["sgx"],
                "sgx": {"mrenclave": [c["mr_enclave"]]},
                "accepted_tcb_statuses": ["ConfigurationAndSWHardeningNeeded"],
            }
        )
    )
    base = [
        "attest",
        "verify",
        str(tmp_path / "ev.json"),
        "--policy",
        str(tmp_path / "p.json"),
        "--nonce",
        NONCE.hex(),
        "--collateral",
        str(tmp_path / "coll"),
    ]
    at_time = runner.invoke(app, [*base, "--at", "2025-07-01T00:00:00Z"])
    assert at_time.exit_code == 3
    assert "step 8. binding (binding_mismatch)" in at_time.stderr  # every check before it passed
    later = runner.invoke(app, [*base, "--at", "2025-08-01T00:00:00Z"])
    assert later.exit_code == 3
    assert "step 4. vendor-signature (collateral_invalid)" in later.stderr
    assert "TCBInfo expired" in later.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--nonce", "abc"], "--nonce must be 32 bytes"),
        (["--nonce", "00" * 32, "--at", "yesterday"], "is not an ISO 8601 time"),
        (["--nonce", "00" * 32, "--at", "2025-07-01T00:00:00"], "needs a time zone"),
    ],
)
def test_bad_arguments_exit_3(
    runner: CliRunner, sim_files: tuple[Path, Path], extra: list[str], message: str
) -> None:
    evidence, policy = sim_files
    result = runner.invoke(
        app, ["attest", "verify", str(evidence), "--policy", str(policy), *extra]
    )
    assert result.exit_code == 3
    assert message in result.stderr


def test_bad_policy_and_evidence_exit_3(
    runner: CliRunner, sim_files: tuple[Path, Path], tmp_path: Path
) -> None:
    evidence, _ = sim_files
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    result = runner.invoke(
        app, ["attest", "verify", str(evidence), "--policy", str(empty), "--nonce", NONCE.hex()]
    )
    assert result.exit_code == 3
    assert "(policy_invalid): the policy is empty" in result.stderr
    _, policy = sim_files
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    result = runner.invoke(
        app, ["attest", "verify", str(junk), "--policy", str(policy), "--nonce", NONCE.hex()]
    )
    assert result.exit_code == 3
    assert "(evidence_malformed)" in result.stderr
