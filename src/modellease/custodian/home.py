"""The custodian home: identity key, master key and data-key store on disk.

Layout (directory mode 0700, files 0600)::

    config.json        format version, public key, how the master key is obtained
    master.key         32 random bytes (absent when a passphrase is used)
    identity.sealed    nonce || AES-256-GCM(identity wrap key, Ed25519 seed)
    data-keys/         one sealed file per bundle (see keystore.py)

Rules:

* the master key is either a random key file readable only by its owner, or derived from
  a passphrase with scrypt (salt and cost in ``config.json``);
* every secret at rest is sealed under its own HKDF sub-key of the master key, so a key
  for one purpose never decrypts another's records;
* ``init`` builds the home in a temporary directory and renames it into place: a home is
  either complete or absent, and an existing one is never overwritten;
* unlocking with the wrong master key or passphrase fails with ``KeyStoreLockedError``
  before anything is read or written.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modellease._hazmat import (
    AEAD_NONCE_SIZE,
    AuthenticationFailed,
    FrameCipher,
    ScryptParams,
    SigningKey,
    hkdf_sha256,
    random_aead_key,
    scrypt,
)
from modellease.custodian.keystore import KeyStore
from modellease.errors import HomeExistsError, HomeNotFoundError, KeyStoreLockedError
from modellease.keys import CustodianPublicKey, custodian_key_from_hex, fingerprint

HOME_ENV = "MODELLEASE_HOME"
DEFAULT_HOME = Path("~/.modellease")
HOME_FORMAT = 1

CONFIG_FILE = "config.json"
MASTER_KEY_FILE = "master.key"
IDENTITY_FILE = "identity.sealed"
DATA_KEYS_DIR = "data-keys"

_IDENTITY_INFO = b"modellease/home/v1/identity"
_DATA_KEYS_INFO = b"modellease/home/v1/data-keys"
_IDENTITY_AAD = b"modellease/home/v1/identity-seed"


def resolve_home(explicit: Path | None) -> Path:
    """``--home`` if given, else ``$MODELLEASE_HOME``, else ``~/.modellease``."""
    if explicit is not None:
        return explicit.expanduser()
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else DEFAULT_HOME.expanduser()


def read_passphrase_file(path: Path) -> bytes:
    """Read a passphrase; one trailing newline is ignored. Empty passphrases are refused."""
    data = path.read_bytes()
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    if not data:
        raise ValueError(f"the passphrase file {path} is empty")
    return data


@dataclass(frozen=True, slots=True)
class UnlockedHome:
    """The custodian's secrets, available after unlocking."""

    signer: SigningKey
    keys: KeyStore


class CustodianHome:
    """An initialised custodian home. Reading its public key needs no secret."""

    __slots__ = ("_config", "path")

    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = path
        self._config = config

    # ------------------------------------------------------------------ create / load
    @classmethod
    def init(
        cls, path: Path, *, passphrase: bytes | None = None, scrypt_log2_n: int | None = None
    ) -> CustodianHome:
        """Create a new home at ``path``; refuses if anything is already there."""
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise HomeExistsError(f"{path} already exists and is not empty; refusing to overwrite")
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.init-"))
        try:
            config = cls._populate(staging, passphrase, scrypt_log2_n)
            if path.exists():
                path.rmdir()  # an empty directory the user made for us
            staging.rename(path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(path, config)

    @staticmethod
    def _populate(
        staging: Path, passphrase: bytes | None, scrypt_log2_n: int | None
    ) -> dict[str, Any]:
        staging.chmod(0o700)
        (staging / DATA_KEYS_DIR).mkdir(mode=0o700)
        master: dict[str, Any]
        if passphrase is None:
            key = random_aead_key()
            _write_secret(staging / MASTER_KEY_FILE, key)
            master = {"kind": "key-file"}
        else:
            params = ScryptParams(salt=os.urandom(16), **_log2_n(scrypt_log2_n))
            key = scrypt(passphrase, params)
            master = {
                "kind": "scrypt",
                "salt": params.salt.hex(),
                "log2_n": params.log2_n,
                "r": params.r,
                "p": params.p,
            }
        signer = SigningKey.generate()
        nonce = os.urandom(AEAD_NONCE_SIZE)
        wrap = FrameCipher(hkdf_sha256(key, info=_IDENTITY_INFO))
        _write_secret(
            staging / IDENTITY_FILE, nonce + wrap.encrypt(nonce, signer.seed(), _IDENTITY_AAD)
        )
        config = {
            "home_format": HOME_FORMAT,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "custodian_public_key": signer.public_bytes().hex(),
            "master_key": master,
        }
        _write_secret(staging / CONFIG_FILE, json.dumps(config, indent=2).encode() + b"\n")
        return config

    @classmethod
    def load(cls, path: Path) -> CustodianHome:
        """Open an existing home (its public parts only)."""
        try:
            config = json.loads((path / CONFIG_FILE).read_text())
        except FileNotFoundError:
            raise HomeNotFoundError(
                f"no custodian home at {path}; create one with `modellease custodian init`"
            ) from None
        if not isinstance(config, dict) or config.get("home_format") != HOME_FORMAT:
            raise HomeNotFoundError(f"{path / CONFIG_FILE} is not a modellease home config")
        return cls(path, config)

    # ------------------------------------------------------------------ public parts
    @property
    def public_key(self) -> CustodianPublicKey:
        return custodian_key_from_hex(str(self._config["custodian_public_key"]))

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def uses_passphrase(self) -> bool:
        return bool(self._config["master_key"]["kind"] == "scrypt")

    # ------------------------------------------------------------------ secrets
    def unlock(self, passphrase: bytes | None = None) -> UnlockedHome:
        """Derive the master key and open the identity key; fails before touching anything."""
        key = self._master_key(passphrase)
        blob = (self.path / IDENTITY_FILE).read_bytes()
        wrap = FrameCipher(hkdf_sha256(key, info=_IDENTITY_INFO))
        try:
            seed = wrap.decrypt(blob[:AEAD_NONCE_SIZE], blob[AEAD_NONCE_SIZE:], _IDENTITY_AAD)
        except AuthenticationFailed:
            raise KeyStoreLockedError(
                "cannot unlock the custodian home: wrong passphrase or master key"
            ) from None
        signer = SigningKey.from_seed(seed)
        if signer.public_bytes() != self.public_key:
            raise KeyStoreLockedError("the identity key does not match config.json")
        keys = KeyStore(self.path / DATA_KEYS_DIR, hkdf_sha256(key, info=_DATA_KEYS_INFO))
        return UnlockedHome(signer=signer, keys=keys)

    def _master_key(self, passphrase: bytes | None) -> bytes:
        master = self._config["master_key"]
        if master.get("kind") not in {"key-file", "scrypt"}:
            raise KeyStoreLockedError(f"unknown master key kind in {self.path / CONFIG_FILE}")
        if master["kind"] == "scrypt":
            if passphrase is None:
                raise KeyStoreLockedError("this custodian home needs its passphrase file")
            params = ScryptParams(
                salt=bytes.fromhex(master["salt"]),
                log2_n=master["log2_n"],
                r=master["r"],
                p=master["p"],
            )
            return scrypt(passphrase, params)
        if passphrase is not None:
            raise KeyStoreLockedError("this custodian home uses a key file, not a passphrase")
        key_file = self.path / MASTER_KEY_FILE
        mode = key_file.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreLockedError(
                f"{key_file} is accessible by other users (mode {stat.filemode(mode)}); "
                "run `chmod 600` on it"
            )
        key = key_file.read_bytes()
        if len(key) != 32:
            raise KeyStoreLockedError(f"{key_file} is not a 32-byte master key")
        return key


def _log2_n(value: int | None) -> dict[str, int]:
    return {} if value is None else {"log2_n": value}


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
