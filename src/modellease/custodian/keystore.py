"""The custodian's store of bundle data keys (DEKs), encrypted at rest.

Rules:

* one file per bundle, ``<bundle_id>.dek`` = nonce (12) || AES-256-GCM(wrap key, DEK);
* the wrap key is derived from the home's master key for this purpose only, and the AAD
  names the bundle id, so a key file renamed to another bundle id does not open;
* a key is written once (crash-safe, never replaced) and never leaves except through
  :meth:`KeyStore.get` to the custodian process that unlocked the home.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from modellease._hazmat import (
    AEAD_KEY_SIZE,
    AEAD_NONCE_SIZE,
    AEAD_TAG_SIZE,
    AuthenticationFailed,
    FrameCipher,
)
from modellease.custodian._files import write_new_file
from modellease.errors import KeyStoreLockedError, UnknownBundleKeyError
from modellease.keys import DataKey, data_key

_BUNDLE_ID = re.compile(r"[0-9a-f]{32}")
_AAD_PREFIX = b"modellease/home/v1/data-key/"
_RECORD_SIZE = AEAD_NONCE_SIZE + AEAD_KEY_SIZE + AEAD_TAG_SIZE


class KeyStore:
    """Data keys by bundle id, in ``directory``, sealed under ``wrap_key``."""

    __slots__ = ("_cipher", "_dir")

    def __init__(self, directory: Path, wrap_key: bytes) -> None:
        self._dir = directory
        self._cipher = FrameCipher(wrap_key)

    def _path(self, bundle_id: str) -> Path:
        if _BUNDLE_ID.fullmatch(bundle_id) is None:
            raise ValueError("a bundle id is 32 lowercase hex digits")
        return self._dir / f"{bundle_id}.dek"

    def put(self, bundle_id: str, key: DataKey) -> None:
        """Store the data key of a new bundle; refuses to replace an existing one."""
        nonce = os.urandom(AEAD_NONCE_SIZE)
        sealed = self._cipher.encrypt(nonce, key, _AAD_PREFIX + bundle_id.encode())
        write_new_file(self._path(bundle_id), nonce + sealed)

    def get(self, bundle_id: str) -> DataKey:
        """Return the data key of ``bundle_id``."""
        path = self._path(bundle_id)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise UnknownBundleKeyError(
                f"no data key for bundle {bundle_id} in this custodian home"
            ) from None
        if len(blob) != _RECORD_SIZE:
            raise KeyStoreLockedError(f"the stored data key for {bundle_id} is damaged")
        try:
            raw = self._cipher.decrypt(
                blob[:AEAD_NONCE_SIZE], blob[AEAD_NONCE_SIZE:], _AAD_PREFIX + bundle_id.encode()
            )
        except AuthenticationFailed:
            raise KeyStoreLockedError(
                f"the stored data key for {bundle_id} does not open"
            ) from None
        return data_key(raw)

    def bundle_ids(self) -> list[str]:
        """Every bundle id with a stored key, sorted."""
        return sorted(
            p.stem for p in self._dir.glob("*.dek") if _BUNDLE_ID.fullmatch(p.stem) is not None
        )
