"""HPKE (RFC 9180) base mode, single shot, one suite: X25519 / HKDF-SHA256 / AES-256-GCM.

Rules:

* one suite only: DHKEM(X25519, HKDF-SHA256) 0x0020, HKDF-SHA256 0x0001, AES-256-GCM 0x0002
  (RFC 9180 §7); nothing negotiates it, so there is nothing to downgrade;
* base mode (``mode_base``, §5.1.1), one message per encapsulation (sequence number 0,
  §5.2), empty AAD; everything the message is bound to goes into ``info``, which is
  mandatory, non-empty and at most :data:`HPKE_MAX_INFO_SIZE` bytes;
* a sealed message is ``enc (32 bytes) || ciphertext || tag (16 bytes)``, the layout of
  RFC 9180 §6.1 ``Seal``; anything shorter than :data:`HPKE_OVERHEAD` cannot be one;
* base mode does not authenticate the sender: anyone holding the public key can seal to
  it, so what a plaintext is worth must come from elsewhere (a signature, a MAC inside);
* a recipient key of low order (an all-zero shared secret, §7.1.4) is refused at seal time;
* every failure to open (wrong key, wrong info, modified, truncated or extended message)
  is the single signal :class:`HpkeOpenFailed`; callers turn it into their own error;
* a private key never shows its bytes in ``repr``; the raw scalar leaves only through
  :meth:`KemPrivateKey.private_bytes`, for sealing it at rest inside the TEE.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from modellease._hazmat._aead import AuthenticationFailed

X25519_KEY_SIZE = 32  # RFC 7748 §5: scalars and u-coordinates are 32 bytes
HPKE_ENC_SIZE = 32  # Nenc for DHKEM(X25519, HKDF-SHA256), RFC 9180 §7.1
HPKE_TAG_SIZE = 16  # Nt for AES-256-GCM, RFC 9180 §7.3
HPKE_OVERHEAD = HPKE_ENC_SIZE + HPKE_TAG_SIZE
HPKE_MAX_INFO_SIZE = 1024  # our infos are ~150 bytes; RFC 9180 §7.2.1 only asks for 64
HPKE_MAX_PLAINTEXT_SIZE = 64 * 1024  # key wrapping, not bulk data

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


class HpkeOpenFailed(AuthenticationFailed):
    """A sealed message did not open: wrong key or info, or the bytes were changed."""


class KemPrivateKey:
    """An X25519 private key for HPKE. Its bytes never appear in ``repr``."""

    __slots__ = ("_key",)

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> KemPrivateKey:
        """A fresh key from the operating system's CSPRNG (inside the TEE, at start-up)."""
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> KemPrivateKey:
        if len(raw) != X25519_KEY_SIZE:
            raise ValueError("an X25519 private key is 32 bytes")
        return cls(X25519PrivateKey.from_private_bytes(bytes(raw)))

    def private_bytes(self) -> bytes:
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def public_bytes(self) -> bytes:
        """The raw 32-byte public key, as bound into the attestation claims."""
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def __repr__(self) -> str:  # never print key material
        return "KemPrivateKey(<x25519>)"


def _check_info(info: bytes) -> None:
    if not isinstance(info, bytes):
        raise TypeError("info must be bytes")
    if not 0 < len(info) <= HPKE_MAX_INFO_SIZE:
        raise ValueError(f"info must be 1 to {HPKE_MAX_INFO_SIZE} bytes")


def hpke_seal(public_key_raw: bytes, plaintext: bytes, *, info: bytes) -> bytes:
    """Seal ``plaintext`` to a raw X25519 public key; return ``enc || ciphertext || tag``.

    Raises ``ValueError`` for a key that is not 32 bytes or is of low order, an empty or
    oversized ``info``, or a plaintext above :data:`HPKE_MAX_PLAINTEXT_SIZE`.
    """
    _check_info(info)
    if len(public_key_raw) != X25519_KEY_SIZE:
        raise ValueError("an X25519 public key is 32 bytes")
    if len(plaintext) > HPKE_MAX_PLAINTEXT_SIZE:
        raise ValueError(f"plaintext above {HPKE_MAX_PLAINTEXT_SIZE} bytes")
    recipient = X25519PublicKey.from_public_bytes(bytes(public_key_raw))
    # cryptography raises ValueError("Error computing shared key.") for a low-order key.
    return _SUITE.encrypt(bytes(plaintext), recipient, info=info)


def hpke_open(private_key: KemPrivateKey, sealed: bytes, *, info: bytes) -> bytes:
    """Open a message made by :func:`hpke_seal` for ``private_key`` with the same ``info``.

    Raises :class:`HpkeOpenFailed` for any message that does not open.
    """
    _check_info(info)
    if not isinstance(private_key, KemPrivateKey):
        raise TypeError("private_key must be a KemPrivateKey")
    if not HPKE_OVERHEAD <= len(sealed) <= HPKE_OVERHEAD + HPKE_MAX_PLAINTEXT_SIZE:
        raise HpkeOpenFailed
    try:
        return _SUITE.decrypt(bytes(sealed), private_key._key, info=info)
    except (InvalidTag, ValueError):
        raise HpkeOpenFailed from None
