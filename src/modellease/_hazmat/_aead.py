"""AES-256-GCM over caller-owned buffers.

Rules:

* keys are exactly 32 random bytes; nonces exactly 12 bytes; tags 16 bytes;
* encryption and decryption write into buffers the caller allocated, so the hot path
  never allocates a fresh plaintext (``AESGCM.decrypt`` that allocates is ~4x slower);
* a failed tag check is reported as ``False`` (hot path) or :class:`AuthenticationFailed`
  (small messages) and nothing else; callers turn it into their own opaque error.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AEAD_KEY_SIZE = 32  # AES-256
AEAD_NONCE_SIZE = 12  # the GCM nonce size NIST SP 800-38D recommends
AEAD_TAG_SIZE = 16  # full-length GCM tag


class AuthenticationFailed(Exception):  # noqa: N818 - internal signal, never leaves modellease
    """An AEAD tag did not verify (wrong key, nonce, AAD or modified ciphertext)."""


def random_aead_key() -> bytes:
    """Return a fresh AES-256 key from the operating system's CSPRNG."""
    return os.urandom(AEAD_KEY_SIZE)


def _check_nonce(nonce: bytes) -> None:
    if len(nonce) != AEAD_NONCE_SIZE:
        raise ValueError("AES-GCM nonces here are exactly 12 bytes")


class FrameCipher:
    """AES-256-GCM bound to one key, encrypting and decrypting into given buffers."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != AEAD_KEY_SIZE:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._aead = AESGCM(bytes(key))

    def encrypt_into(
        self, nonce: bytes, plaintext: memoryview, aad: bytes, out: memoryview
    ) -> None:
        """Write ``ciphertext || tag`` (``len(plaintext) + 16`` bytes) into ``out``."""
        _check_nonce(nonce)
        self._aead.encrypt_into(nonce, plaintext, aad, out)

    def decrypt_into(self, nonce: bytes, sealed: memoryview, aad: bytes, out: memoryview) -> bool:
        """Verify ``sealed`` (ciphertext || tag) and write its plaintext into ``out``.

        Returns whether the tag verified. It returns rather than raises so that no
        traceback keeps a reference to ``out`` (a view of plaintext memory) alive.
        """
        _check_nonce(nonce)
        try:
            self._aead.decrypt_into(nonce, sealed, aad, out)
        except InvalidTag:
            out[:] = bytes(len(out))  # OpenSSL wrote unauthenticated plaintext: never leave it
            return False
        return True

    def encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Return ``ciphertext || tag`` for small messages (key wrapping, not the hot path)."""
        _check_nonce(nonce)
        return self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        """Return the plaintext of a small message, or raise :class:`AuthenticationFailed`."""
        _check_nonce(nonce)
        try:
            return self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise AuthenticationFailed from None
