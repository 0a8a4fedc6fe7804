"""The custodian home: creation, refusal to overwrite, unlocking, and secrets at rest."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from modellease.custodian.home import (
    CONFIG_FILE,
    DATA_KEYS_DIR,
    IDENTITY_FILE,
    MASTER_KEY_FILE,
    CustodianHome,
    read_passphrase_file,
    resolve_home,
)
from modellease.errors import HomeExistsError, HomeNotFoundError, KeyStoreLockedError
from modellease.keys import fingerprint

FAST_SCRYPT = 14  # the lowest cost the home accepts; keeps the suite quick


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_a_private_home(tmp_path: Path) -> None:
    home = CustodianHome.init(tmp_path / "home")
    assert sorted(p.name for p in home.path.iterdir()) == sorted(
        [CONFIG_FILE, DATA_KEYS_DIR, IDENTITY_FILE, MASTER_KEY_FILE]
    )
    assert mode(home.path) == 0o700
    assert mode(home.path / DATA_KEYS_DIR) == 0o700
    for name in (CONFIG_FILE, IDENTITY_FILE, MASTER_KEY_FILE):
        assert mode(home.path / name) == 0o600
    assert len((home.path / MASTER_KEY_FILE).read_bytes()) == 32
    assert home.fingerprint == fingerprint(home.public_key)
    assert not home.uses_passphrase


def test_identity_seed_is_not_stored_in_the_clear(tmp_path: Path) -> None:
    home = CustodianHome.init(tmp_path / "home")
    seed = home.unlock().signer.seed()
    for path in home.path.rglob("*"):
        if path.is_file():
            assert seed not in path.read_bytes()
            assert seed.hex().encode() not in path.read_bytes()


def test_load_and_unlock_give_the_same_identity(tmp_path: Path) -> None:
    created = CustodianHome.init(tmp_path / "home")
    loaded = CustodianHome.load(tmp_path / "home")
    assert loaded.public_key == created.public_key
    assert loaded.unlock().signer.public_bytes() == created.public_key


def test_init_into_an_empty_directory_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    assert CustodianHome.init(tmp_path / "home").path.is_dir()


@pytest.mark.parametrize("existing", ["home", "file", "other-content"])
def test_init_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    target = tmp_path / "home"
    if existing == "home":
        CustodianHome.init(target)
    elif existing == "file":
        target.write_text("x")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(HomeExistsError, match="refusing to overwrite"):
        CustodianHome.init(target)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_failed_init_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scrypt"):
        CustodianHome.init(tmp_path / "home", passphrase=b"pw", scrypt_log2_n=3)
    assert list(tmp_path.iterdir()) == []


def test_passphrase_home(tmp_path: Path) -> None:
    home = CustodianHome.init(
        tmp_path / "home", passphrase=b"correct horse", scrypt_log2_n=FAST_SCRYPT
    )
    assert home.uses_passphrase
    assert not (home.path / MASTER_KEY_FILE).exists()
    config = json.loads((home.path / CONFIG_FILE).read_text())
    assert config["master_key"]["kind"] == "scrypt"
    assert config["master_key"]["log2_n"] == FAST_SCRYPT
    assert home.unlock(b"correct horse").signer.public_bytes() == home.public_key
    with pytest.raises(KeyStoreLockedError, match="wrong passphrase or master key"):
        home.unlock(b"wrong horse")
    with pytest.raises(KeyStoreLockedError, match="needs its passphrase"):
        home.unlock()


def test_key_file_home_refuses_a_passphrase(tmp_path: Path) -> None:
    home = CustodianHome.init(tmp_path / "home")
    with pytest.raises(KeyStoreLockedError, match="uses a key file"):
        home.unlock(b"pw")


def test_unlock_refuses_a_master_key_readable_by_others(tmp_path: Path) -> None:
    home = CustodianHome.init(tmp_path / "home")
    (home.path / MASTER_KEY_FILE).chmod(0o644)
    with pytest.raises(KeyStoreLockedError, match="accessible by other users"):
        home.unlock()


def test_unlock_refuses_a_replaced_master_key(tmp_path: Path) -> None:
    home = CustodianHome.init(tmp_path / "home")
    (home.path / MASTER_KEY_FILE).write_bytes(b"\x00" * 32)
    with pytest.raises(KeyStoreLockedError, match="wrong passphrase or master key"):
        home.unlock()
    (home.path / MASTER_KEY_FILE).write_bytes(b"\x00" * 31)
    with pytest.raises(KeyStoreLockedError, match="not a 32-byte master key"):
        home.unlock()
    (home.path / MASTER_KEY_FILE).unlink()
    (home.path / MASTER_KEY_FILE).mkdir(mode=0o700)
    with pytest.raises(KeyStoreLockedError, match="not a regular file"):
        home.unlock()


def test_unlock_refuses_an_identity_that_does_not_match_config(tmp_path: Path) -> None:
    a = CustodianHome.init(tmp_path / "a")
    b = CustodianHome.init(tmp_path / "b")
    (b.path / MASTER_KEY_FILE).write_bytes((a.path / MASTER_KEY_FILE).read_bytes())
    (b.path / IDENTITY_FILE).write_bytes((a.path / IDENTITY_FILE).read_bytes())
    with pytest.raises(KeyStoreLockedError, match=r"does not match config\.json"):
        b.unlock()


def test_load_missing_or_foreign_home(tmp_path: Path) -> None:
    with pytest.raises(HomeNotFoundError, match="custodian init"):
        CustodianHome.load(tmp_path / "nowhere")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / CONFIG_FILE).write_text('{"home_format": 99}')
    with pytest.raises(HomeNotFoundError, match="not a modellease home config"):
        CustodianHome.load(tmp_path / "odd")


def test_resolve_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELLEASE_HOME", str(tmp_path / "env"))
    assert resolve_home(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_home(None) == tmp_path / "env"
    monkeypatch.delenv("MODELLEASE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_home(None) == tmp_path / ".modellease"


def test_passphrase_file(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_bytes(b"secret\n")
    assert read_passphrase_file(path) == b"secret"
    path.write_bytes(b"\n")
    with pytest.raises(ValueError, match="is empty"):
        read_passphrase_file(path)


def test_unknown_master_key_kind_is_refused(tmp_path: Path) -> None:
    home = CustodianHome.init(tmp_path / "home")
    config = json.loads((home.path / CONFIG_FILE).read_text())
    config["master_key"]["kind"] = "hsm"
    (home.path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(HomeNotFoundError, match="not a modellease home config"):
        CustodianHome.load(home.path)


@pytest.mark.parametrize(
    "master",
    [
        {},
        {"kind": "scrypt"},
        {"kind": "key-file", "salt": "00" * 16},
        {"kind": "scrypt", "salt": "00" * 16, "log2_n": 3, "r": 8, "p": 1},
    ],
)
def test_malformed_master_key_config_is_refused_on_load(tmp_path: Path, master: dict) -> None:
    home = CustodianHome.init(tmp_path / "home")
    config = json.loads((home.path / CONFIG_FILE).read_text())
    config["master_key"] = master
    (home.path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(HomeNotFoundError, match="not a modellease home config"):
        CustodianHome.load(home.path)


def test_master_key_symlink_is_refused(tmp_path: Path) -> None:
    home = CustodianHome.init(tmp_path / "home")
    real = tmp_path / "elsewhere.key"
    real.write_bytes((home.path / MASTER_KEY_FILE).read_bytes())
    real.chmod(0o600)
    (home.path / MASTER_KEY_FILE).unlink()
    (home.path / MASTER_KEY_FILE).symlink_to(real)
    with pytest.raises(KeyStoreLockedError, match="cannot open"):
        home.unlock()
