"""Seal then open: the round trip, the streaming seal's own refusals, and the reader's I/O."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modellease.bundle import BundleReader, open_bundle, seal_stream
from modellease.bundle import seal as seal_module
from modellease.bundle._io import stream_length
from modellease.bundle.format import MIN_FRAME_SIZE
from modellease.errors import (
    BundleIntegrityError,
    InvalidInputError,
    LimitExceededError,
    ModelFileError,
)
from modellease.keys import data_key
from tests.conftest import FIXED_TIME, SMALL_FRAME, seal_bytes, signer_from


def reopen(blob: bytes, sealed: object) -> bytes:
    s = sealed
    return bytes(
        open_bundle(io.BytesIO(blob), data_key=s.key, trusted_custodians=[s.custodian]).plaintext  # type: ignore[attr-defined]
    )


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from([1, 2, 255, 256, 257, 511, 512, 513, 767, 768, 769, 2048, 2049])
    | st.integers(min_value=1, max_value=3000),
    frame=st.sampled_from([MIN_FRAME_SIZE, 257, 512, 1000]),
    seed=st.integers(min_value=0, max_value=255),
)
def test_open_of_seal_is_identity(size: int, frame: int, seed: int) -> None:
    data = bytes((seed + i * 31) % 256 for i in range(size))
    sealed = seal_bytes(data, frame_size=frame)
    assert reopen(sealed.blob, sealed) == data
    assert sealed.sealed.manifest.model.size == size


def test_round_trip_through_a_file_with_progress(tmp_path: Path, model_bytes: bytes) -> None:
    sealed = seal_bytes(model_bytes)
    path = tmp_path / "m.mlbundle"
    path.write_bytes(sealed.blob)
    done: list[int] = []
    opened = open_bundle(
        path, data_key=sealed.key, trusted_custodians=[sealed.custodian], progress=done.append
    )
    assert opened.plaintext == model_bytes
    assert sum(done) == len(model_bytes)
    assert opened.manifest == sealed.sealed.manifest


def test_an_opened_bundle_wipes_its_plaintext(tmp_path: Path, model_bytes: bytes) -> None:
    sealed = seal_bytes(model_bytes, key=b"\x01" * 32, bundle_id="c" * 32)
    path = tmp_path / "m.mlbundle"
    path.write_bytes(sealed.blob)
    opened = open_bundle(path, data_key=sealed.key, trusted_custodians=[sealed.custodian])
    assert opened.plaintext == model_bytes
    opened.wipe()
    assert opened.plaintext == bytes(len(model_bytes))


def test_fresh_seals_differ_and_both_open(model_bytes: bytes) -> None:
    a = seal_bytes(model_bytes, key=b"\x01" * 32, bundle_id="a" * 32)
    b = seal_bytes(model_bytes, key=b"\x02" * 32, bundle_id="b" * 32)
    assert a.blob[a.frames_offset :] != b.blob[b.frames_offset :]
    assert reopen(a.blob, a) == reopen(b.blob, b) == model_bytes


def test_empty_model_is_refused() -> None:
    with pytest.raises(ModelFileError, match="the model file is empty"):
        seal_bytes(b"")


def test_model_above_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seal_module, "MAX_MODEL_SIZE", 100)
    with pytest.raises(LimitExceededError, match="model is 101 bytes; the limit is 100"):
        seal_bytes(b"x" * 101)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bundle_id": "nope"}, "bundle_id"),
        ({"frame_size": 16}, "frame_size"),
        ({"name": ""}, "name: String should have at least 1 character"),
        ({"provenance": {"bad": float("nan")}}, "cannot canonicalise"),
    ],
)
def test_bad_seal_arguments_are_refused(model_bytes: bytes, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        seal_bytes(model_bytes, **kwargs)


class ChangingFile(io.BytesIO):
    """A model file that another process rewrites between the seal's two passes."""

    def __init__(self, first: bytes, second: bytes) -> None:
        super().__init__(first)
        self._second = second
        self._seeks = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        self._seeks += 1
        if self._seeks == 2:
            self.__init__(self._second, self._second)  # type: ignore[misc]
            self._seeks = 2
        return super().seek(pos, whence)


@pytest.mark.parametrize("second", [b"A" * 999, b"A" * 1000 + b"B", b"A" * 999 + b"C"])
def test_model_changing_while_sealing_is_refused(second: bytes) -> None:
    source = ChangingFile(b"A" * 1000, second)
    with pytest.raises(ModelFileError, match="changed while it was being sealed"):
        seal_stream(
            source,
            io.BytesIO(),
            signer=signer_from(1),
            key=data_key(b"\x42" * 32),
            bundle_id="0" * 32,
            created_at=FIXED_TIME,
            name="m",
            version="1",
            model_format="onnx",
            provenance={},
            frame_size=SMALL_FRAME,
        )


@pytest.mark.parametrize("change", ["truncate", "append"])
def test_bundle_file_changing_after_verification_is_refused(tmp_path: Path, change: str) -> None:
    model_bytes = bytes(range(256)) * 256  # 64 KiB: larger than the file object's read buffer
    sealed = seal_bytes(model_bytes)
    path = tmp_path / "m.mlbundle"
    path.write_bytes(sealed.blob)
    with BundleReader.open(path, trusted_custodians=[sealed.custodian]) as reader:
        with path.open("r+b") as f:
            if change == "truncate":
                f.truncate(len(sealed.blob) - 1)
            else:
                f.seek(0, 2)
                f.write(b"\x00")
        out = bytearray(len(model_bytes))
        with pytest.raises(BundleIntegrityError):
            reader.decrypt_into(out, data_key=sealed.key)
    assert out == bytes(len(out))


def test_reader_closes_the_file_it_opened_when_verification_fails(tmp_path: Path) -> None:
    path = tmp_path / "junk"
    path.write_bytes(b"junk" * 10)
    with pytest.raises(Exception, match="not a modellease bundle"):
        BundleReader.open(path, trusted_custodians=[b"k" * 32])  # type: ignore[list-item]


def test_reader_leaves_a_callers_file_open(model_bytes: bytes) -> None:
    sealed = seal_bytes(model_bytes)
    f = io.BytesIO(sealed.blob)
    with BundleReader.open(f, trusted_custodians=[sealed.custodian]) as reader:
        assert reader.manifest.model.size == len(model_bytes)
    assert not f.closed


def test_unseekable_length_is_found_by_seeking(model_bytes: bytes) -> None:
    """BytesIO has no fileno(); the reader measures it by seeking and restores the position."""
    f = io.BytesIO(b"abcdef")
    f.seek(2)
    assert stream_length(f) == 6
    assert f.tell() == 2


def test_reprs_do_not_show_the_data_key_or_the_model(model_bytes: bytes) -> None:
    sealed = seal_bytes(model_bytes)
    assert sealed.key.hex() not in repr(sealed.sealed)
    assert repr(sealed.key) not in repr(sealed.sealed)
    opened = open_bundle(
        io.BytesIO(sealed.blob), data_key=sealed.key, trusted_custodians=[sealed.custodian]
    )
    assert "plaintext" not in repr(opened)
