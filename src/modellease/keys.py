"""Key purposes as distinct types, and how public keys are named.

Each purpose has its own ``NewType`` so the type checker refuses, say, a data key
where a custodian public key is expected. Public keys are shown as lowercase hex;
their fingerprint is ``sha256:`` followed by the hex SHA-256 of the raw key bytes.
"""

from __future__ import annotations

import hashlib
import re
from typing import NewType

from modellease._hazmat import AEAD_KEY_SIZE

CustodianPublicKey = NewType("CustodianPublicKey", bytes)
"""Raw 32-byte Ed25519 public key of a custodian; signs manifests (and later grants)."""

DataKey = NewType("DataKey", bytes)
"""32-byte AES-256 data key (DEK) that encrypts one bundle's frames."""

InstanceSigningKey = NewType("InstanceSigningKey", bytes)
"""Raw 32-byte Ed25519 public key generated inside a TEE instance; signs its usage reports."""

InstanceKemKey = NewType("InstanceKemKey", bytes)
"""Raw 32-byte X25519 public key generated inside a TEE instance; data keys are wrapped to it."""

Nonce = NewType("Nonce", bytes)
"""32 random bytes chosen by a verifier; appears once in the claims it appraises."""

_HEX_KEY = re.compile(r"[0-9a-f]{64}")


def fingerprint(public_key: bytes) -> str:
    """Return ``sha256:<hex>`` of the raw public key bytes."""
    return "sha256:" + hashlib.sha256(public_key).hexdigest()


def custodian_key_from_hex(text: str) -> CustodianPublicKey:
    """Parse a custodian public key written as 64 lowercase hex digits."""
    if _HEX_KEY.fullmatch(text) is None:
        raise ValueError("a custodian public key is 64 lowercase hex digits")
    return CustodianPublicKey(bytes.fromhex(text))


def data_key(raw: bytes) -> DataKey:
    """Check and tag 32 raw bytes as a bundle data key."""
    if len(raw) != AEAD_KEY_SIZE:
        raise ValueError("a data key is 32 bytes")
    return DataKey(bytes(raw))


__all__ = [
    "CustodianPublicKey",
    "DataKey",
    "InstanceKemKey",
    "InstanceSigningKey",
    "Nonce",
    "custodian_key_from_hex",
    "data_key",
    "fingerprint",
]
