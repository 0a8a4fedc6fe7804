"""``modellease demo`` tells the whole lease story end to end on the two real models."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from modellease.cli import app


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "a copy with one flipped bit is refused: bundle_integrity" in text
    assert "simulated TEE: INSECURE" in text
    accuracy = float(text.split("one binary request: ")[1].split("%")[0])
    assert accuracy > 90.0
    assert text.count("the consumer verified https://127.0.0.1:") == 2
    assert "TLS key sha256" in text
    assert "in a batch signed by the attested instance key: " in text
    assert text.count("  Q: ") >= 4
    assert "the node refuses the next request (429 allowance_exhausted)" in text
    assert "the node filed a signed extension request for 200 tokens" in text
    assert "approved 200 tokens; next answer: " in text
    assert "answered 410 killed after" in text
    assert "model unloaded: True" in text
    assert "): intact" in text
    assert "demo complete" in text
    assert (tmp_path / "smollm2.mlbundle").is_file()
    assert not (tmp_path / "digits.onnx").exists()  # no plaintext model left on disk
