"""Decrypting into a file descriptor (the language model's memory file): same plaintext as
in memory, positional writes that may come back short, and staging buffers wiped."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest

from modellease.bundle import BundleReader, _io
from modellease.bundle import reader as reader_module
from modellease.bundle.format import TAG_SIZE
from modellease.errors import BundleIntegrityError
from tests.conftest import SMALL_FRAME, Sealed, seal_bytes


@pytest.fixture
def memfd() -> Iterator[int]:
    fd = os.memfd_create("test-model", os.MFD_CLOEXEC)
    yield fd
    os.close(fd)


def decrypt_to(fd: int, sealed: Sealed, blob: bytes | None = None) -> None:
    with BundleReader.open(
        io.BytesIO(sealed.blob if blob is None else blob), trusted_custodians=[sealed.custodian]
    ) as reader:
        reader.decrypt_to_file(fd, data_key=sealed.key)


@pytest.mark.parametrize("frames_per_run", [1, 2, 100])
def test_the_file_holds_the_plaintext(
    monkeypatch: pytest.MonkeyPatch, memfd: int, model_bytes: bytes, frames_per_run: int
) -> None:
    """Runs of one frame, two, or all of them: both threads' writes land where they belong."""
    monkeypatch.setattr(reader_module, "READ_CHUNK", frames_per_run * (SMALL_FRAME + TAG_SIZE))
    decrypt_to(memfd, seal_bytes(model_bytes))
    assert os.fstat(memfd).st_size == len(model_bytes)
    assert os.pread(memfd, len(model_bytes) + 1, 0) == model_bytes


def test_a_tampered_frame_is_refused_and_the_staging_buffers_are_wiped(
    monkeypatch: pytest.MonkeyPatch, memfd: int, model_bytes: bytes
) -> None:
    sealed = seal_bytes(model_bytes)
    wiped: list[memoryview] = []
    real_wipe = reader_module.wipe

    def recording_wipe(buffer: memoryview) -> None:
        real_wipe(buffer)
        wiped.append(buffer)

    monkeypatch.setattr(reader_module, "wipe", recording_wipe)
    monkeypatch.setattr(reader_module, "READ_CHUNK", 2 * (SMALL_FRAME + TAG_SIZE))
    tampered = bytearray(sealed.blob)
    tampered[-1] ^= 1  # the last tag: earlier runs were decrypted and written first
    with pytest.raises(BundleIntegrityError):
        decrypt_to(memfd, sealed, bytes(tampered))
    assert len(wiped) == reader_module.DECRYPT_THREADS
    assert all(len(buffer) == 2 * SMALL_FRAME for buffer in wiped)
    assert all(not any(buffer) for buffer in wiped)


def test_short_writes_are_continued(
    monkeypatch: pytest.MonkeyPatch, memfd: int, model_bytes: bytes
) -> None:
    real_pwrite = os.pwrite
    calls: list[int] = []

    def three_bytes_at_a_time(fd: int, data: memoryview, offset: int) -> int:
        calls.append(offset)
        return real_pwrite(fd, data[:3], offset)

    monkeypatch.setattr(_io.os, "pwrite", three_bytes_at_a_time)
    decrypt_to(memfd, seal_bytes(model_bytes))
    assert os.pread(memfd, len(model_bytes), 0) == model_bytes
    assert len(calls) == -(-len(model_bytes) // 3)


def test_a_write_that_makes_no_progress_is_an_error(
    monkeypatch: pytest.MonkeyPatch, memfd: int, model_bytes: bytes
) -> None:
    monkeypatch.setattr(_io.os, "pwrite", lambda _fd, _data, _offset: 0)
    with pytest.raises(OSError, match="could not write to file descriptor"):
        decrypt_to(memfd, seal_bytes(model_bytes))
