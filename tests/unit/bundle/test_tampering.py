"""Attacks on a sealed bundle: every one ends in a specific, typed error and no plaintext.

The bundle under attack has five 256-byte frames (the last one partial). Anything that is
not a header problem fails with the one opaque BundleIntegrityError.
"""

from __future__ import annotations

import io

import pytest

from modellease.bundle import BundleReader, open_bundle
from modellease.bundle.format import HEADER_SIZE, MAX_MANIFEST_SIZE, TAG_SIZE
from modellease.errors import (
    BundleIntegrityError,
    LimitExceededError,
    ModelleaseError,
    NotABundleError,
    UnsupportedBundleVersionError,
)
from modellease.keys import CustodianPublicKey, data_key
from tests.conftest import SMALL_FRAME, Sealed, seal_bytes, signer_from


def open_blob(sealed: Sealed, blob: bytes, **kw: object) -> bytearray:
    opened = open_bundle(
        io.BytesIO(blob),
        data_key=kw.pop("key", sealed.key),  # type: ignore[arg-type]
        trusted_custodians=kw.pop("trusted", [sealed.custodian]),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return opened.plaintext


def frames_of(sealed: Sealed) -> list[bytes]:
    body = sealed.blob[sealed.frames_offset :]
    step = SMALL_FRAME + TAG_SIZE
    return [body[i : i + step] for i in range(0, len(body), step)]


def with_frames(sealed: Sealed, frames: list[bytes]) -> bytes:
    return sealed.blob[: sealed.frames_offset] + b"".join(frames)


@pytest.fixture
def target(model_bytes: bytes) -> Sealed:
    sealed = seal_bytes(model_bytes)
    assert len(frames_of(sealed)) == 5
    return sealed


def test_untouched_bundle_opens(target: Sealed, model_bytes: bytes) -> None:
    assert open_blob(target, target.blob) == model_bytes


def expected_for_truncation(length: int) -> type[ModelleaseError]:
    return NotABundleError if length < HEADER_SIZE else BundleIntegrityError


def test_truncation_at_every_offset_is_refused(target: Sealed) -> None:
    for length in range(len(target.blob)):
        with pytest.raises(expected_for_truncation(length)):
            open_blob(target, target.blob[:length])


def test_truncation_at_frame_boundaries_is_refused(target: Sealed) -> None:
    frames = frames_of(target)
    for keep in range(len(frames)):
        with pytest.raises(BundleIntegrityError):
            open_blob(target, with_frames(target, frames[:keep]))


@pytest.mark.parametrize("extra", [b"\x00", b"x" * 16, b"y" * (SMALL_FRAME + TAG_SIZE)])
def test_appended_bytes_are_refused(target: Sealed, extra: bytes) -> None:
    with pytest.raises(BundleIntegrityError):
        open_blob(target, target.blob + extra)


def test_appended_copy_of_last_frame_is_refused(target: Sealed) -> None:
    frames = frames_of(target)
    with pytest.raises(BundleIntegrityError):
        open_blob(target, with_frames(target, [*frames, frames[-1]]))


def expected_for_flip(target: Sealed, offset: int, mutated: bytes) -> type[ModelleaseError]:
    if offset < 8:
        return NotABundleError
    if offset < 10:
        return UnsupportedBundleVersionError
    if 12 <= offset < 16 and int.from_bytes(mutated[12:16], "big") > MAX_MANIFEST_SIZE:
        return LimitExceededError
    return BundleIntegrityError


@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_flipping_any_bit_is_refused_with_its_specific_error(target: Sealed, mask: int) -> None:
    """Header, manifest, signature, every frame and every tag: one flip each."""
    for offset in range(len(target.blob)):
        mutated = bytearray(target.blob)
        mutated[offset] ^= mask
        with pytest.raises(expected_for_flip(target, offset, bytes(mutated))):
            open_blob(target, bytes(mutated))


def test_swapped_frames_are_refused(target: Sealed) -> None:
    f = frames_of(target)
    with pytest.raises(BundleIntegrityError):
        open_blob(target, with_frames(target, [f[1], f[0], *f[2:]]))


def test_duplicated_frame_in_place_of_another_is_refused(target: Sealed) -> None:
    f = frames_of(target)
    with pytest.raises(BundleIntegrityError):
        open_blob(target, with_frames(target, [f[0], f[0], *f[2:]]))


def test_dropped_middle_frame_is_refused(target: Sealed) -> None:
    f = frames_of(target)
    with pytest.raises(BundleIntegrityError):
        open_blob(target, with_frames(target, [f[0], *f[2:]]))


def test_frame_spliced_from_another_bundle_is_refused(target: Sealed, model_bytes: bytes) -> None:
    """Even under the same data key and bundle id: the AAD binds each frame to its manifest."""
    other = seal_bytes(model_bytes[::-1])
    assert other.sealed.manifest.bundle_id == target.sealed.manifest.bundle_id
    spliced = frames_of(target)
    spliced[2] = frames_of(other)[2]
    with pytest.raises(BundleIntegrityError):
        open_blob(target, with_frames(target, spliced))


def test_frames_under_another_manifest_are_refused(target: Sealed, model_bytes: bytes) -> None:
    """A validly signed manifest of another bundle in front of these frames fails."""
    other = seal_bytes(model_bytes, bundle_id="f" * 32)
    swapped = other.blob[: other.frames_offset] + target.blob[target.frames_offset :]
    with pytest.raises(BundleIntegrityError):
        open_blob(target, swapped)


def test_wrong_data_key_is_refused(target: Sealed) -> None:
    with pytest.raises(BundleIntegrityError):
        open_blob(target, target.blob, key=data_key(b"\x43" * 32))


def test_unknown_custodian_is_refused(target: Sealed) -> None:
    stranger = CustodianPublicKey(signer_from(9).public_bytes())
    with pytest.raises(BundleIntegrityError) as caught:
        open_blob(target, target.blob, trusted=[stranger])
    assert str(caught.value) == BundleIntegrityError.MESSAGE


def test_no_trusted_custodian_is_a_caller_error(target: Sealed) -> None:
    with pytest.raises(ValueError, match="no trusted custodian keys"):
        open_blob(target, target.blob, trusted=[])


def test_declared_size_above_callers_limit_is_refused(target: Sealed) -> None:
    with pytest.raises(LimitExceededError, match="model size 1124 exceeds the limit of 1000"):
        open_blob(target, target.blob, max_model_size=1000)


@pytest.mark.parametrize("blob", [b"", b"\x00" * 100, b"GGUF" + bytes(100), b"\x08\x08\x12" * 40])
def test_non_bundle_files_are_refused(target: Sealed, blob: bytes) -> None:
    with pytest.raises(NotABundleError):
        open_blob(target, blob)


def test_failed_open_wipes_the_callers_buffer(target: Sealed) -> None:
    mutated = bytearray(target.blob)
    mutated[-1] ^= 1  # last tag: every earlier frame decrypted before the failure
    buffer = bytearray(b"\xff" * target.sealed.manifest.model.size)
    reader = BundleReader.open(io.BytesIO(bytes(mutated)), trusted_custodians=[target.custodian])
    with reader, pytest.raises(BundleIntegrityError):
        reader.decrypt_into(buffer, data_key=target.key)
    assert buffer == bytes(len(buffer))


def test_buffer_too_small_is_a_caller_error(target: Sealed) -> None:
    with BundleReader.open(io.BytesIO(target.blob), trusted_custodians=[target.custodian]) as r:
        with pytest.raises(ValueError, match="writable buffer of at least 1124 bytes"):
            r.decrypt_into(bytearray(10), data_key=target.key)
        with pytest.raises(ValueError, match="writable buffer"):
            r.decrypt_into(memoryview(bytes(2000)), data_key=target.key)
