"""The data-key store: sealed at rest, bound to bundle ids, written once."""

from __future__ import annotations

from pathlib import Path

import pytest

from modellease.custodian.home import DATA_KEYS_DIR, CustodianHome
from modellease.errors import KeyStoreLockedError, OutputExistsError, UnknownBundleKeyError
from modellease.keys import data_key

A, B = "a" * 32, "b" * 32
KEY = data_key(b"\x11" * 32)


@pytest.fixture
def home(tmp_path: Path) -> CustodianHome:
    return CustodianHome.init(tmp_path / "home")


def test_put_get_and_list(home: CustodianHome) -> None:
    keys = home.unlock().keys
    keys.put(A, KEY)
    assert keys.get(A) == KEY
    assert keys.bundle_ids() == [A]
    assert CustodianHome.load(home.path).unlock().keys.get(A) == KEY  # survives reloading


def test_key_is_not_stored_in_the_clear(home: CustodianHome) -> None:
    home.unlock().keys.put(A, KEY)
    blob = (home.path / DATA_KEYS_DIR / f"{A}.dek").read_bytes()
    assert KEY not in blob
    assert len(blob) == 12 + 32 + 16


def test_put_never_replaces_a_key(home: CustodianHome) -> None:
    keys = home.unlock().keys
    keys.put(A, KEY)
    with pytest.raises(OutputExistsError):
        keys.put(A, data_key(b"\x22" * 32))
    assert keys.get(A) == KEY
    assert sorted(p.name for p in (home.path / DATA_KEYS_DIR).iterdir()) == [f"{A}.dek"]


def test_unknown_bundle(home: CustodianHome) -> None:
    with pytest.raises(UnknownBundleKeyError, match=f"no data key for bundle {B}"):
        home.unlock().keys.get(B)


def test_key_file_renamed_to_another_bundle_does_not_open(home: CustodianHome) -> None:
    keys = home.unlock().keys
    keys.put(A, KEY)
    directory = home.path / DATA_KEYS_DIR
    (directory / f"{A}.dek").rename(directory / f"{B}.dek")
    with pytest.raises(KeyStoreLockedError, match="does not open"):
        keys.get(B)


def test_damaged_key_file(home: CustodianHome) -> None:
    keys = home.unlock().keys
    keys.put(A, KEY)
    path = home.path / DATA_KEYS_DIR / f"{A}.dek"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(KeyStoreLockedError, match="is damaged"):
        keys.get(A)


def test_key_of_another_home_does_not_open(tmp_path: Path, home: CustodianHome) -> None:
    other = CustodianHome.init(tmp_path / "other")
    other.unlock().keys.put(A, KEY)
    theirs = other.path / DATA_KEYS_DIR / f"{A}.dek"
    (home.path / DATA_KEYS_DIR / f"{A}.dek").write_bytes(theirs.read_bytes())
    with pytest.raises(KeyStoreLockedError):
        home.unlock().keys.get(A)


def test_bundle_ids_must_be_hex(home: CustodianHome) -> None:
    with pytest.raises(ValueError, match="32 lowercase hex"):
        home.unlock().keys.get("../../etc/passwd")
