"""The ``modellease`` command: outputs, exit codes (0 ok, 1 other, 2 usage, 3 bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modellease.cli import app
from modellease.custodian.home import DATA_KEYS_DIR, CustodianHome
from tests.conftest import seal_bytes

ONNX_LIKE = b"\x08\x08\x12\x08" + bytes(range(256)) * 64


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def home(tmp_path: Path, runner: CliRunner) -> Path:
    path = tmp_path / "home"
    result = runner.invoke(app, ["custodian", "init", "--home", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(ONNX_LIKE)
    return path


@pytest.fixture
def bundle(tmp_path: Path, runner: CliRunner, home: Path, model: Path) -> Path:
    out = tmp_path / "model.mlbundle"
    result = runner.invoke(
        app, ["seal", str(model), "--home", str(home), "--out", str(out), "--name", "demo"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_init_prints_identity_and_refuses_a_second_time(runner: CliRunner, home: Path) -> None:
    public = CustodianHome.load(home).public_key.hex()
    result = runner.invoke(app, ["keys", "show", "--home", str(home)])
    assert result.exit_code == 0
    assert public in result.output
    again = runner.invoke(app, ["custodian", "init", "--home", str(home)])
    assert again.exit_code == 1
    assert "(home_exists)" in again.stderr


def test_home_comes_from_the_environment(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELLEASE_HOME", str(tmp_path / "env-home"))
    assert runner.invoke(app, ["custodian", "init"]).exit_code == 0
    shown = json.loads(runner.invoke(app, ["keys", "show", "--json"]).stdout)
    loaded = CustodianHome.load(tmp_path / "env-home")
    assert shown == {"public_key": loaded.public_key.hex(), "fingerprint": loaded.fingerprint}


def test_passphrase_home_round_trip(runner: CliRunner, tmp_path: Path, model: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("a long passphrase\n")
    path = tmp_path / "home"
    args = ["--home", str(path), "--passphrase-file", str(pw)]
    init = runner.invoke(app, ["custodian", "init", *args])
    assert init.exit_code == 0
    assert "passphrase (scrypt)" in init.stdout
    assert runner.invoke(app, ["seal", str(model), *args]).exit_code == 0
    no_pw = runner.invoke(
        app, ["unseal", f"{model}.mlbundle", "--out", str(tmp_path / "o"), "--home", str(path)]
    )
    assert no_pw.exit_code == 1
    assert "(key_store_locked)" in no_pw.stderr
    ok = runner.invoke(app, ["unseal", f"{model}.mlbundle", "--out", str(tmp_path / "o"), *args])
    assert ok.exit_code == 0
    assert (tmp_path / "o").read_bytes() == ONNX_LIKE


def test_seal_inspect_unseal(runner: CliRunner, tmp_path: Path, home: Path, bundle: Path) -> None:
    shown = runner.invoke(app, ["inspect", str(bundle)])
    assert shown.exit_code == 0
    assert "demo 1 (onnx)" in shown.stdout
    assert "valid" in shown.stdout
    doc = json.loads(runner.invoke(app, ["inspect", str(bundle), "--json"]).stdout)
    assert doc["signature_valid"] is True
    assert doc["length_matches"] is True
    assert doc["custodian_fingerprint"] == CustodianHome.load(home).fingerprint
    assert doc["manifest"]["model"]["size"] == len(ONNX_LIKE)
    assert doc["manifest"]["provenance"]["source_file"] == "model.onnx"
    out = tmp_path / "restored.onnx"
    result = runner.invoke(app, ["unseal", str(bundle), "--out", str(out), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == ONNX_LIKE


def test_seal_with_provenance_file(
    runner: CliRunner, tmp_path: Path, home: Path, model: Path
) -> None:
    prov = tmp_path / "prov.json"
    prov.write_text(json.dumps({"licence": "Apache-2.0", "eval": {"mmlu": 0.25}}))
    out = tmp_path / "p.mlbundle"
    args = ["seal", str(model), "--home", str(home), "--out", str(out), "--provenance", str(prov)]
    assert runner.invoke(app, args).exit_code == 0
    doc = json.loads(runner.invoke(app, ["inspect", str(out), "--json"]).stdout)
    assert doc["manifest"]["provenance"]["licence"] == "Apache-2.0"
    assert doc["manifest"]["provenance"]["eval"] == {"mmlu": 0.25}


@pytest.mark.parametrize("content", ["[1, 2]", "{not json"])
def test_seal_with_bad_provenance_file(
    runner: CliRunner, tmp_path: Path, home: Path, model: Path, content: str
) -> None:
    prov = tmp_path / "prov.json"
    prov.write_text(content)
    result = runner.invoke(
        app, ["seal", str(model), "--home", str(home), "--provenance", str(prov)]
    )
    assert result.exit_code == 3
    assert "(invalid_input)" in result.stderr
    assert not Path(f"{model}.mlbundle").exists()


def test_tampered_bundle_exits_3_everywhere(
    runner: CliRunner, tmp_path: Path, home: Path, bundle: Path
) -> None:
    data = bytearray(bundle.read_bytes())
    data[-1] ^= 1
    bundle.write_bytes(bytes(data))
    out = tmp_path / "never.onnx"
    result = runner.invoke(app, ["unseal", str(bundle), "--out", str(out), "--home", str(home)])
    assert result.exit_code == 3
    assert "error (bundle_integrity): bundle failed integrity checks" in result.stderr
    assert not out.exists()
    data[200] ^= 1  # inside the manifest
    bundle.write_bytes(bytes(data))
    shown = runner.invoke(app, ["inspect", str(bundle)])
    assert shown.exit_code == 3


def test_truncated_bundle_shows_wrong_length(runner: CliRunner, bundle: Path) -> None:
    bundle.write_bytes(bundle.read_bytes()[:-3])
    shown = runner.invoke(app, ["inspect", str(bundle)])
    assert shown.exit_code == 3
    assert "WRONG (truncated or extended)" in shown.stdout


def test_non_bundle_exits_3(runner: CliRunner, model: Path, home: Path, tmp_path: Path) -> None:
    for args in (
        ["inspect", str(model)],
        ["unseal", str(model), "--out", str(tmp_path / "x"), "--home", str(home)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 3
        assert "error (not_a_bundle): not a modellease bundle" in result.stderr


def test_empty_model_exits_3(runner: CliRunner, tmp_path: Path, home: Path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    result = runner.invoke(app, ["seal", str(empty), "--home", str(home), "--format", "onnx"])
    assert result.exit_code == 3
    assert "(model_file)" in result.stderr
    assert list((home / DATA_KEYS_DIR).iterdir()) == []


def test_missing_files_and_homes_exit_1(runner: CliRunner, tmp_path: Path, model: Path) -> None:
    no_home = runner.invoke(app, ["seal", str(model), "--home", str(tmp_path / "none")])
    assert no_home.exit_code == 1
    assert "(home_not_found)" in no_home.stderr
    missing = runner.invoke(app, ["inspect", str(tmp_path / "missing.mlbundle")])
    assert missing.exit_code == 1
    assert "error (FileNotFoundError): " in missing.stderr


def test_overwrite_refused_exit_1(runner: CliRunner, home: Path, model: Path, bundle: Path) -> None:
    result = runner.invoke(app, ["unseal", str(bundle), "--out", str(model), "--home", str(home)])
    assert result.exit_code == 1
    assert "(output_exists)" in result.stderr
    assert model.read_bytes() == ONNX_LIKE


def test_usage_errors_exit_2(runner: CliRunner) -> None:
    assert runner.invoke(app, ["seal"]).exit_code == 2
    assert runner.invoke(app, ["unseal", "x"]).exit_code == 2
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2


def test_large_model_shows_progress_and_round_trips(
    runner: CliRunner, tmp_path: Path, home: Path
) -> None:
    big = tmp_path / "big.gguf"
    big.write_bytes(b"GGUF" + bytes(range(256)) * (5 * 4096))  # 5 MiB: above the bar threshold
    assert runner.invoke(app, ["seal", str(big), "--home", str(home)]).exit_code == 0
    out = tmp_path / "big.out"
    result = runner.invoke(
        app, ["unseal", f"{big}.mlbundle", "--out", str(out), "--home", str(home)]
    )
    assert result.exit_code == 0
    assert out.read_bytes() == big.read_bytes()


def _truncate_to_frame_boundary(data: bytes) -> bytes:
    return data[: -(len(ONNX_LIKE) % (1 << 20) + 16)]


def _oversize_manifest_length(data: bytes) -> bytes:
    return data[:12] + (1 << 20).to_bytes(4, "big") + data[16:]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (_truncate_to_frame_boundary, "bundle_integrity"),
        (lambda d: d + b"\x00" * 32, "bundle_integrity"),
        (lambda d: d[:-1], "bundle_integrity"),
        (lambda d: d[:8] + b"\x00\x07" + d[10:], "unsupported_bundle_version"),
        (_oversize_manifest_length, "limit_exceeded"),
        (lambda d: b"\x00" * len(d), "not_a_bundle"),
    ],
)
def test_unseal_attacks_exit_3_with_their_reason(
    runner: CliRunner, tmp_path: Path, home: Path, bundle: Path, mutate: object, reason: str
) -> None:
    bundle.write_bytes(mutate(bundle.read_bytes()))  # type: ignore[operator]
    out = tmp_path / "never.onnx"
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, ["unseal", str(bundle), "--out", str(out), "--home", str(home)])
    assert result.exit_code == 3, result.output
    assert f"error ({reason}):" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_unseal_of_another_custodians_bundle_exits_3(
    runner: CliRunner, tmp_path: Path, bundle: Path
) -> None:
    other = tmp_path / "other-home"
    assert runner.invoke(app, ["custodian", "init", "--home", str(other)]).exit_code == 0
    result = runner.invoke(
        app, ["unseal", str(bundle), "--out", str(tmp_path / "o"), "--home", str(other)]
    )
    assert result.exit_code == 3
    assert "error (bundle_integrity):" in result.stderr


def test_inspect_prints_untrusted_text_inert(runner: CliRunner, tmp_path: Path) -> None:
    """A bundle signed by anyone may carry escape codes or rich markup in its name."""
    hostile = "\x1b[8A\u202e[/][link=https://evil]x[/link]"
    path = tmp_path / "hostile.mlbundle"
    path.write_bytes(seal_bytes(b"\x08" * 300, name=hostile).blob)
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout
    assert "\u202e" not in result.stdout
    assert "\\x1b[8A\\u202e[/][link=https://evil]x[/link]" in result.stdout
