"""``modellease demo`` runs the custodian's story end to end on the real digits model."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from modellease.cli import app


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "round trip identical: True" in result.stdout
    assert "refused: bundle failed integrity checks" in result.stdout
    assert "production policy: refused at step 1. tee-allowed (simulated_refused)" in result.stdout
    assert "development policy: verified, insecure=True" in result.stdout
    assert "served 30 classifications" in result.stdout
    assert "request 31 refused by the node's meter: 429 allowance_exhausted" in result.stdout
    assert "served 20 more" in result.stdout
    assert "the grant now allows 50; then 429 allowance_exhausted" in result.stdout
    assert "1 signed kill order verified by the node's lease keeper" in result.stdout
    assert "the next request gets 410 killed" in result.stdout
    assert "demo complete" in result.stdout
    accuracy = float(result.stdout.split("held-out digits: ")[1].split("%")[0])
    assert accuracy > 90.0
    assert (tmp_path / "digits.onnx.mlbundle").is_file()
