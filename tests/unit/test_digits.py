"""The demo model builder is deterministic and the model is real."""

from __future__ import annotations

import hashlib
from pathlib import Path

from modellease.testing.digits import accuracy, build_digits_model, main


def test_model_is_deterministic_and_accurate(tmp_path: Path) -> None:
    first = build_digits_model()
    assert main([str(tmp_path / "d.onnx")]) == 0
    second = (tmp_path / "d.onnx").read_bytes()
    assert hashlib.sha256(first.onnx).digest() == hashlib.sha256(second).digest()
    assert accuracy(first.onnx, first.test_inputs, first.test_labels) > 0.95
    assert main([]) == 2
