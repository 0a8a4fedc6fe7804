"""The primitive choke point: parameter checks and failure signals."""

from __future__ import annotations

import pytest

from modellease._hazmat import (
    AuthenticationFailed,
    FrameCipher,
    ScryptParams,
    SigningKey,
    ct_equal,
    ed25519_verify,
    hkdf_sha256,
    scrypt,
)


def test_ct_equal() -> None:
    assert ct_equal(b"abc", b"abc")
    assert not ct_equal(b"abc", b"abd")
    assert not ct_equal(b"abc", b"ab")


def test_cipher_needs_a_256_bit_key() -> None:
    with pytest.raises(ValueError, match="32-byte key"):
        FrameCipher(b"k" * 16)


def test_small_message_round_trip_and_failure() -> None:
    cipher = FrameCipher(b"k" * 32)
    sealed = cipher.encrypt(b"n" * 12, b"secret", b"aad")
    assert cipher.decrypt(b"n" * 12, sealed, b"aad") == b"secret"
    with pytest.raises(AuthenticationFailed):
        cipher.decrypt(b"n" * 12, sealed, b"other")


def test_signing_key_round_trip_and_repr() -> None:
    key = SigningKey.generate()
    again = SigningKey.from_seed(key.seed())
    assert again.public_bytes() == key.public_bytes()
    assert ed25519_verify(key.public_bytes(), key.sign(b"m"), b"m")
    assert not ed25519_verify(key.public_bytes(), key.sign(b"m"), b"n")
    assert "seed" not in repr(key)
    assert key.seed().hex() not in repr(key)
    with pytest.raises(ValueError, match="32 bytes"):
        SigningKey.from_seed(b"short")


@pytest.mark.parametrize(("public", "signature"), [(b"k" * 31, b"s" * 64), (b"k" * 32, b"s" * 63)])
def test_verify_refuses_wrong_lengths(public: bytes, signature: bytes) -> None:
    assert not ed25519_verify(public, signature, b"m")


def test_verify_refuses_invalid_points() -> None:
    assert not ed25519_verify(b"\xff" * 32, b"\x00" * 64, b"m")


def test_scrypt_parameters_are_bounded() -> None:
    with pytest.raises(ValueError, match="log2"):
        ScryptParams(salt=b"s" * 16, log2_n=10)
    with pytest.raises(ValueError, match="salt of at least 16 bytes"):
        ScryptParams(salt=b"s" * 8, log2_n=14)
    params = ScryptParams(salt=b"s" * 16, log2_n=14)
    assert scrypt(b"pw", params) == scrypt(b"pw", params) != scrypt(b"pw2", params)


def test_hkdf_separates_purposes() -> None:
    assert hkdf_sha256(b"k" * 32, info=b"a") != hkdf_sha256(b"k" * 32, info=b"b")


def test_failed_decrypt_leaves_no_unauthenticated_plaintext() -> None:
    cipher = FrameCipher(b"k" * 32)
    sealed = bytearray(64 + 16)
    cipher.encrypt_into(b"n" * 12, memoryview(b"p" * 64), b"", memoryview(sealed))
    sealed[0] ^= 1
    out = bytearray(b"\xff" * 64)
    assert not cipher.decrypt_into(b"n" * 12, memoryview(sealed), b"", memoryview(out))
    assert out == bytes(64)


@pytest.mark.parametrize("nonce", [b"n" * 8, b"n" * 16])
def test_nonces_are_exactly_12_bytes(nonce: bytes) -> None:
    cipher = FrameCipher(b"k" * 32)
    with pytest.raises(ValueError, match="exactly 12 bytes"):
        cipher.encrypt(nonce, b"m", b"")
    with pytest.raises(ValueError, match="exactly 12 bytes"):
        cipher.decrypt(nonce, b"m" * 17, b"")
    with pytest.raises(ValueError, match="exactly 12 bytes"):
        cipher.decrypt_into(nonce, memoryview(b"m" * 17), b"", memoryview(bytearray(1)))
