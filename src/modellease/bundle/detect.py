"""Recognising a model file's format from its first bytes and its name."""

from __future__ import annotations

import struct
from pathlib import PurePath

from modellease.bundle.manifest import MODEL_FORMATS, ModelFormat
from modellease.errors import ModelFileError

SNIFF_SIZE = 16  # bytes of the model file needed to recognise every supported format

_GGUF_MAGIC = b"GGUF"
_ONNX_FIRST_TAG = 0x08  # ModelProto field 1 (ir_version), varint: every ONNX writer starts so
_SUFFIXES: dict[str, ModelFormat] = {
    ".onnx": "onnx",
    ".gguf": "gguf",
    ".safetensors": "safetensors",
}


def _looks_like(fmt: ModelFormat, head: bytes) -> bool:
    if fmt == "gguf":
        return head.startswith(_GGUF_MAGIC)
    if fmt == "safetensors":
        # 8-byte little-endian header length, then a JSON object.
        return len(head) > 8 and struct.unpack_from("<Q", head)[0] > 1 and head[8:9] == b"{"
    return len(head) > 1 and head[0] == _ONNX_FIRST_TAG


def detect_format(name: str, head: bytes, requested: str = "auto") -> ModelFormat:
    """Return the model format, checking the file's first bytes agree with any request."""
    if requested == "auto":
        by_suffix = _SUFFIXES.get(PurePath(name).suffix.lower())
        candidates = [by_suffix] if by_suffix else list(MODEL_FORMATS)
        for fmt in candidates:
            if _looks_like(fmt, head):
                return fmt
        raise ModelFileError(
            f"cannot recognise the format of {name!r}; pass --format onnx|gguf|safetensors"
        )
    if requested not in MODEL_FORMATS:
        raise ModelFileError(f"unknown model format {requested!r}")
    fmt = MODEL_FORMATS[MODEL_FORMATS.index(requested)]
    if not _looks_like(fmt, head):
        raise ModelFileError(f"{name!r} does not look like a {fmt} file")
    return fmt
