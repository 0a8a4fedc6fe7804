"""Format detection for the model file handed to ``seal``."""

from __future__ import annotations

import pytest

from modellease.bundle import detect_format
from modellease.errors import ModelFileError

GGUF = b"GGUF\x03\x00\x00\x00" + bytes(8)
SAFETENSORS = (120).to_bytes(8, "little") + b'{"__metadata__"'
ONNX = b"\x08\x08\x12\x08skl2onnx"


@pytest.mark.parametrize(
    ("name", "head", "fmt"),
    [
        ("m.gguf", GGUF, "gguf"),
        ("m.safetensors", SAFETENSORS, "safetensors"),
        ("m.onnx", ONNX, "onnx"),
        ("model.bin", GGUF, "gguf"),
        ("model.bin", SAFETENSORS, "safetensors"),
        ("model", ONNX, "onnx"),
        ("M.GGUF", GGUF, "gguf"),
    ],
)
def test_detects_by_name_and_content(name: str, head: bytes, fmt: str) -> None:
    assert detect_format(name, head) == fmt
    assert detect_format(name, head, fmt) == fmt


@pytest.mark.parametrize(
    ("name", "head"),
    [("m.gguf", ONNX), ("m.onnx", GGUF), ("notes.txt", b"hello world, 16b"), ("x", b"")],
)
def test_unrecognised_content_is_refused(name: str, head: bytes) -> None:
    with pytest.raises(ModelFileError, match="cannot recognise the format"):
        detect_format(name, head)


def test_requested_format_must_match_the_content() -> None:
    with pytest.raises(ModelFileError, match="does not look like a gguf file"):
        detect_format("m.bin", ONNX, "gguf")
    with pytest.raises(ModelFileError, match="unknown model format 'pickle'"):
        detect_format("m.bin", ONNX, "pickle")
