"""Key purposes and their text forms."""

from __future__ import annotations

import hashlib

import pytest

from modellease.keys import custodian_key_from_hex, data_key, fingerprint


def test_fingerprint_is_sha256_of_the_raw_key() -> None:
    assert fingerprint(b"\x01" * 32) == "sha256:" + hashlib.sha256(b"\x01" * 32).hexdigest()


def test_custodian_key_from_hex() -> None:
    assert custodian_key_from_hex("ab" * 32) == b"\xab" * 32
    for bad in ("AB" * 32, "ab" * 31, "zz" * 32):
        with pytest.raises(ValueError, match="64 lowercase hex digits"):
            custodian_key_from_hex(bad)


def test_data_key_length() -> None:
    assert data_key(b"k" * 32) == b"k" * 32
    with pytest.raises(ValueError, match="32 bytes"):
        data_key(b"k" * 16)
