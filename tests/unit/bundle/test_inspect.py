"""``inspect_bundle``: what a bundle says about itself, checked against its own key only."""

from __future__ import annotations

from pathlib import Path

import pytest

from modellease.bundle import inspect_bundle
from modellease.errors import BundleIntegrityError, NotABundleError
from tests.conftest import Sealed, seal_bytes, signer_from
from tests.unit.bundle.forge import forge, pretty


@pytest.fixture
def sealed(model_bytes: bytes) -> Sealed:
    return seal_bytes(model_bytes)


def write(tmp_path: Path, blob: bytes) -> Path:
    path = tmp_path / "b.mlbundle"
    path.write_bytes(blob)
    return path


def test_intact_bundle(tmp_path: Path, sealed: Sealed) -> None:
    found = inspect_bundle(write(tmp_path, sealed.blob))
    assert found.intact
    assert found.manifest == sealed.sealed.manifest
    assert found.length == len(sealed.blob)
    assert found.header.manifest_size == len(sealed.sealed.manifest.to_canonical_json())


def test_flipped_signature_shows_invalid(tmp_path: Path, sealed: Sealed) -> None:
    blob = bytearray(sealed.blob)
    blob[sealed.frames_offset - 1] ^= 1
    found = inspect_bundle(write(tmp_path, bytes(blob)))
    assert (found.signature_valid, found.length_matches, found.intact) == (False, True, False)


def test_truncated_frames_show_wrong_length(tmp_path: Path, sealed: Sealed) -> None:
    found = inspect_bundle(write(tmp_path, sealed.blob[:-1]))
    assert (found.signature_valid, found.length_matches, found.intact) == (True, False, False)


def test_unreadable_manifest_is_an_integrity_error(
    tmp_path: Path, sealed: Sealed, model_bytes: bytes
) -> None:
    doc = sealed.sealed.manifest.model_dump(mode="json")
    blob = forge(doc, model_bytes, signer=signer_from(1), key=b"\x42" * 32, raw=pretty(doc))
    with pytest.raises(BundleIntegrityError):
        inspect_bundle(write(tmp_path, blob))


def test_non_bundle(tmp_path: Path) -> None:
    with pytest.raises(NotABundleError):
        inspect_bundle(write(tmp_path, b"\x08\x08" * 100))
