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
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
from modellease.custodian._files import fsync_dir
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
MASTER_KEY_SIZE = 32

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


class MasterKeyConfig(BaseModel):
    """How the master key is obtained: a key file, or scrypt over a passphrase."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["key-file", "scrypt"]
    salt: str | None = Field(default=None, pattern=r"^[0-9a-f]{32,128}$")
    log2_n: int | None = None
    r: int | None = None
    p: int | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        params = (self.salt, self.log2_n, self.r, self.p)
        if (self.kind == "scrypt") != all(v is not None for v in params) or (
            self.kind == "key-file" and any(v is not None for v in params)
        ):
            raise ValueError("scrypt needs salt, log2_n, r and p; a key file needs none")
        self.scrypt_params()  # bounds are checked by ScryptParams
        return self

    def scrypt_params(self) -> ScryptParams | None:
        if self.kind != "scrypt" or self.salt is None or self.log2_n is None:
            return None
        return ScryptParams(
            salt=bytes.fromhex(self.salt), log2_n=self.log2_n, r=self.r or 0, p=self.p or 0
        )


class HomeConfig(BaseModel):
    """``config.json``: public facts about the home, checked on every load."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    home_format: Literal[1]
    created_at: str
    custodian_public_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    master_key: MasterKeyConfig


class CustodianHome:
    """An initialised custodian home. Reading its public key needs no secret."""

    __slots__ = ("_config", "path")

    def __init__(self, path: Path, config: HomeConfig) -> None:
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
            fsync_dir(staging)
            staging.rename(path)  # atomically replaces an empty directory the user made for us
            fsync_dir(path.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(path, HomeConfig.model_validate(config))

    @staticmethod
    def _populate(
        staging: Path, passphrase: bytes | None, scrypt_log2_n: int | None
    ) -> dict[str, Any]:
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
            raw = (path / CONFIG_FILE).read_bytes()
        except FileNotFoundError:
            raise HomeNotFoundError(
                f"no custodian home at {path}; create one with `modellease custodian init`"
            ) from None
        try:
            config = HomeConfig.model_validate_json(raw)
        except ValidationError:
            raise HomeNotFoundError(
                f"{path / CONFIG_FILE} is not a modellease home config"
            ) from None
        return cls(path, config)

    # ------------------------------------------------------------------ public parts
    @property
    def public_key(self) -> CustodianPublicKey:
        return custodian_key_from_hex(self._config.custodian_public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def uses_passphrase(self) -> bool:
        return self._config.master_key.kind == "scrypt"

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
        params = self._config.master_key.scrypt_params()
        if params is not None:
            if passphrase is None:
                raise KeyStoreLockedError("this custodian home needs its passphrase file")
            return scrypt(passphrase, params)
        if passphrase is not None:
            raise KeyStoreLockedError("this custodian home uses a key file, not a passphrase")
        return _read_master_key_file(self.path / MASTER_KEY_FILE)


def _read_master_key_file(path: Path) -> bytes:
    """Read the master key like ssh reads a private key: no symlink, ours alone, 0600."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise KeyStoreLockedError(f"cannot open {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise KeyStoreLockedError(f"{path} is not a regular file owned by this user")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreLockedError(
                f"{path} is accessible by other users (mode {stat.filemode(info.st_mode)}); "
                "run `chmod 600` on it"
            )
        key = os.read(fd, MASTER_KEY_SIZE + 1)
    finally:
        os.close(fd)
    if len(key) != MASTER_KEY_SIZE:
        raise KeyStoreLockedError(f"{path} is not a 32-byte master key")
    return key


def _log2_n(value: int | None) -> dict[str, int]:
    return {} if value is None else {"log2_n": value}


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
