"""The fixed header, frame arithmetic and the frame nonce/AAD rules."""

from __future__ import annotations

import pytest

from modellease._hazmat import FrameCipher
from modellease.bundle.format import (
    HEADER_SIZE,
    MAGIC,
    MAX_MANIFEST_SIZE,
    BundleHeader,
    BundleVersion,
    frame_aad,
    frame_count,
    frame_nonce,
    sealed_length,
)
from modellease.errors import (
    BundleIntegrityError,
    LimitExceededError,
    NotABundleError,
    UnsupportedBundleVersionError,
)

ROOM = 10_000


def header(version: int = 1, reserved: int = 0, manifest_size: int = 500) -> bytes:
    return BundleHeader.STRUCT.pack(MAGIC, version, reserved, manifest_size)


def test_header_round_trip() -> None:
    parsed = BundleHeader.from_bytes(header(), available=ROOM)
    assert parsed == BundleHeader(version=BundleVersion.V1, manifest_size=500)
    assert parsed.to_bytes() == header()
    assert parsed.frames_offset == HEADER_SIZE + 500 + 64


@pytest.mark.parametrize("data", [b"", MAGIC, header()[:15], b"PK\x03\x04" + bytes(12)])
def test_header_rejects_non_bundles(data: bytes) -> None:
    with pytest.raises(NotABundleError, match="not a modellease bundle"):
        BundleHeader.from_bytes(data, available=ROOM)


def test_header_rejects_unknown_version() -> None:
    with pytest.raises(UnsupportedBundleVersionError, match="version 2"):
        BundleHeader.from_bytes(header(version=2), available=ROOM)


def test_header_rejects_reserved_bits() -> None:
    with pytest.raises(BundleIntegrityError):
        BundleHeader.from_bytes(header(reserved=1), available=ROOM)


def test_header_refuses_oversized_manifest_before_reading_it() -> None:
    with pytest.raises(LimitExceededError, match="exceeds the limit of 65536"):
        BundleHeader.from_bytes(header(manifest_size=MAX_MANIFEST_SIZE + 1), available=1 << 30)


@pytest.mark.parametrize(("size", "available"), [(0, ROOM), (500, HEADER_SIZE + 500 + 63)])
def test_header_rejects_empty_or_truncated_manifest(size: int, available: int) -> None:
    with pytest.raises(BundleIntegrityError):
        BundleHeader.from_bytes(header(manifest_size=size), available=available)


@pytest.mark.parametrize(
    ("size", "frame", "frames", "sealed"),
    [(1, 256, 1, 17), (256, 256, 1, 272), (257, 256, 2, 289), (1024, 256, 4, 1088)],
)
def test_frame_arithmetic(size: int, frame: int, frames: int, sealed: int) -> None:
    assert frame_count(size, frame) == frames
    assert sealed_length(size, frame) == sealed


def test_nonce_encodes_index_and_final_flag() -> None:
    assert frame_nonce(0, final=False) == bytes(12)
    assert frame_nonce(1, final=True) == bytes(7) + b"\x01" + b"\x00\x00\x00\x01"
    assert len({frame_nonce(i, final=f) for i in range(4) for f in (False, True)}) == 8


def test_final_flag_is_authenticated() -> None:
    """A non-final frame presented as the last one fails: truncation cannot pass as the end."""
    cipher = FrameCipher(b"\x01" * 32)
    aad = frame_aad(b"{}")
    sealed = bytearray(16 + 16)
    cipher.encrypt_into(frame_nonce(3, final=False), memoryview(b"x" * 16), aad, memoryview(sealed))
    out = bytearray(16)
    assert cipher.decrypt_into(
        frame_nonce(3, final=False), memoryview(sealed), aad, memoryview(out)
    )
    assert out == b"x" * 16
    for nonce in (frame_nonce(3, final=True), frame_nonce(4, final=False)):
        assert not cipher.decrypt_into(nonce, memoryview(sealed), aad, memoryview(out))
    other_aad = frame_aad(b"[]")
    assert not cipher.decrypt_into(
        frame_nonce(3, final=False), memoryview(sealed), other_aad, memoryview(out)
    )


def test_aad_binds_the_manifest_bytes() -> None:
    assert frame_aad(b'{"a":1}') != frame_aad(b'{"a":2}')
    assert frame_aad(b"{}").startswith(b"modellease/bundle/v1/frame\x00")
    assert len(frame_aad(b"{}")) == 27 + 32
