"""Seal and unseal through a custodian home: ordering, no overwrites, nothing half-done."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from modellease.custodian.home import DATA_KEYS_DIR, CustodianHome, UnlockedHome
from modellease.custodian.sealing import seal_model_file, unseal_bundle
from modellease.errors import (
    BundleIntegrityError,
    ModelFileError,
    OutputExistsError,
    UnknownBundleKeyError,
)

ONNX_LIKE = b"\x08\x08\x12\x08" + bytes(range(256)) * 40


@pytest.fixture
def home(tmp_path: Path) -> tuple[CustodianHome, UnlockedHome]:
    h = CustodianHome.init(tmp_path / "home")
    return h, h.unlock()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(ONNX_LIKE)
    return path


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_seal_then_unseal(
    tmp_path: Path, home: tuple[CustodianHome, UnlockedHome], model: Path
) -> None:
    h, unlocked = home
    sealed = seal_model_file(unlocked, model, tmp_path / "m.mlbundle", name="m", version="1")
    assert sealed.manifest.model.format == "onnx"
    assert sealed.manifest.model.sha256 == hashlib.sha256(ONNX_LIKE).hexdigest()
    assert unlocked.keys.get(sealed.manifest.bundle_id) == sealed.data_key
    assert sealed.data_key not in (tmp_path / "m.mlbundle").read_bytes()
    manifest = unseal_bundle(h, unlocked, tmp_path / "m.mlbundle", tmp_path / "back.onnx")
    assert manifest == sealed.manifest
    assert (tmp_path / "back.onnx").read_bytes() == ONNX_LIKE
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_seal_refuses_to_overwrite(
    tmp_path: Path, home: tuple[CustodianHome, UnlockedHome], model: Path
) -> None:
    _, unlocked = home
    (tmp_path / "m.mlbundle").write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        seal_model_file(unlocked, model, tmp_path / "m.mlbundle", name="m", version="1")
    assert (tmp_path / "m.mlbundle").read_bytes() == b"precious"
    assert unlocked.keys.bundle_ids() == []


def test_failed_seal_leaves_no_file_and_no_key(
    tmp_path: Path, home: tuple[CustodianHome, UnlockedHome]
) -> None:
    _, unlocked = home
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"\x08")  # recognised as ONNX, then found to be one byte of nothing useful
    empty.write_bytes(b"")
    before = listing(tmp_path)
    with pytest.raises(ModelFileError):
        seal_model_file(
            unlocked, empty, tmp_path / "e.mlbundle", name="e", version="1", model_format="onnx"
        )
    assert listing(tmp_path) == before
    assert listing(tmp_path / "home" / DATA_KEYS_DIR) == []


def test_seal_of_missing_model(tmp_path: Path, home: tuple[CustodianHome, UnlockedHome]) -> None:
    _, unlocked = home
    with pytest.raises(ModelFileError, match="cannot read the model file"):
        seal_model_file(unlocked, tmp_path / "nope.onnx", tmp_path / "x", name="x", version="1")


def test_unseal_refuses_to_overwrite(
    tmp_path: Path, home: tuple[CustodianHome, UnlockedHome], model: Path
) -> None:
    h, unlocked = home
    seal_model_file(unlocked, model, tmp_path / "m.mlbundle", name="m", version="1")
    with pytest.raises(OutputExistsError):
        unseal_bundle(h, unlocked, tmp_path / "m.mlbundle", model)
    assert model.read_bytes() == ONNX_LIKE


def test_unseal_of_tampered_bundle_writes_nothing(
    tmp_path: Path, home: tuple[CustodianHome, UnlockedHome], model: Path
) -> None:
    h, unlocked = home
    bundle = tmp_path / "m.mlbundle"
    seal_model_file(unlocked, model, bundle, name="m", version="1")
    data = bytearray(bundle.read_bytes())
    data[-5000] ^= 0x40
    bundle.write_bytes(bytes(data))
    before = listing(tmp_path)
    with pytest.raises(BundleIntegrityError):
        unseal_bundle(h, unlocked, bundle, tmp_path / "out.onnx")
    assert listing(tmp_path) == before


def test_unseal_of_another_custodians_bundle(
    tmp_path: Path, home: tuple[CustodianHome, UnlockedHome], model: Path
) -> None:
    other = CustodianHome.init(tmp_path / "other")
    seal_model_file(other.unlock(), model, tmp_path / "theirs.mlbundle", name="m", version="1")
    h, unlocked = home
    with pytest.raises(BundleIntegrityError):
        unseal_bundle(h, unlocked, tmp_path / "theirs.mlbundle", tmp_path / "out.onnx")


def test_unseal_without_the_data_key(
    tmp_path: Path, home: tuple[CustodianHome, UnlockedHome], model: Path
) -> None:
    h, unlocked = home
    sealed = seal_model_file(unlocked, model, tmp_path / "m.mlbundle", name="m", version="1")
    (h.path / DATA_KEYS_DIR / f"{sealed.manifest.bundle_id}.dek").unlink()
    with pytest.raises(UnknownBundleKeyError):
        unseal_bundle(h, unlocked, tmp_path / "m.mlbundle", tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()
