"""HPKE (RFC 9180) in ``_hazmat``: known answers, interoperability, and every way to fail.

``cryptography``'s HPKE draws its ephemeral key itself, so its output cannot be pinned
directly. Instead an independent reference (``rfc9180.py``) is first checked against every
value of RFC 9180 Appendix A.1.1, then used to (a) open what ``hpke_seal`` made and (b) seal,
with a fixed ephemeral key, a known answer that ``hpke_open`` must open.
"""

from __future__ import annotations

import pytest

from modellease._hazmat import (
    HPKE_MAX_INFO_SIZE,
    HPKE_MAX_PLAINTEXT_SIZE,
    HPKE_OVERHEAD,
    HpkeOpenFailed,
    KemPrivateKey,
    hpke_open,
    hpke_seal,
)
from tests.unit.protocol import rfc9180

A1 = {name: bytes.fromhex(value) for name, value in rfc9180.A1.items()}
INFO = b"modellease/test\x00info"

# Known answer for OUR suite (AES-256-GCM, empty AAD), made with the reference above from the
# RFC's A.1 key pairs, info and plaintext. Pinned so neither side can drift unnoticed.
KAT_SEALED = bytes.fromhex(
    "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431"
    "090b7dc225419f7da9e8b460becfbb96a26c7964d79b8010d397fa838589afa254267701d76b93925614730ccd"
)


def test_reference_reproduces_rfc9180_appendix_a_1_1() -> None:
    sk_e, pk_e = rfc9180.derive_key_pair(A1["ikmE"])
    sk_r, pk_r = rfc9180.derive_key_pair(A1["ikmR"])
    assert (sk_e, pk_e, sk_r, pk_r) == (A1["skEm"], A1["pkEm"], A1["skRm"], A1["pkRm"])
    enc, ctx = rfc9180.setup_sender(rfc9180.AEAD_AES_128_GCM, pk_r, A1["info"], sk_e=sk_e)
    assert enc == A1["enc"]
    assert ctx.shared_secret == A1["shared_secret"]
    assert ctx.key_schedule_context == A1["key_schedule_context"]
    assert ctx.secret == A1["secret"]
    assert ctx.key == A1["key"]
    assert ctx.base_nonce == A1["base_nonce"]
    assert ctx.exporter_secret == A1["exporter_secret"]
    sealed = rfc9180.seal(
        rfc9180.AEAD_AES_128_GCM, pk_r, A1["info"], A1["aad"], A1["pt"], sk_e=sk_e
    )
    assert sealed == A1["enc"] + A1["ct"]
    assert rfc9180.open_(rfc9180.AEAD_AES_128_GCM, sk_r, A1["info"], A1["aad"], sealed) == A1["pt"]


def test_known_answer_for_our_suite_opens() -> None:
    reference = rfc9180.seal(
        rfc9180.AEAD_AES_256_GCM, A1["pkRm"], A1["info"], b"", A1["pt"], sk_e=A1["skEm"]
    )
    assert reference == KAT_SEALED
    recipient = KemPrivateKey.from_private_bytes(A1["skRm"])
    assert recipient.public_bytes() == A1["pkRm"]
    assert hpke_open(recipient, KAT_SEALED, info=A1["info"]) == A1["pt"]


def test_our_seal_opens_in_the_reference() -> None:
    recipient = KemPrivateKey.generate()
    sealed = hpke_seal(recipient.public_bytes(), b"\x42" * 32, info=INFO)
    opened = rfc9180.open_(rfc9180.AEAD_AES_256_GCM, recipient.private_bytes(), INFO, b"", sealed)
    assert opened == b"\x42" * 32


def test_round_trip_and_layout() -> None:
    recipient = KemPrivateKey.generate()
    sealed = hpke_seal(recipient.public_bytes(), b"secret", info=INFO)
    assert len(sealed) == HPKE_OVERHEAD + len(b"secret") == 32 + 6 + 16
    assert hpke_open(recipient, sealed, info=INFO) == b"secret"
    assert (
        hpke_open(recipient, hpke_seal(recipient.public_bytes(), b"", info=INFO), info=INFO) == b""
    )


def test_each_seal_uses_a_fresh_ephemeral_key() -> None:
    public = KemPrivateKey.generate().public_bytes()
    first, second = (hpke_seal(public, b"k" * 32, info=INFO) for _ in range(2))
    assert first[:32] != second[:32]
    assert first[32:] != second[32:]


def test_kem_key_never_shows_its_bytes() -> None:
    key = KemPrivateKey.generate()
    assert repr(key) == "KemPrivateKey(<x25519>)"
    assert key.private_bytes().hex() not in repr(key)
    assert len(key.public_bytes()) == 32
    assert (
        KemPrivateKey.from_private_bytes(key.private_bytes()).public_bytes() == key.public_bytes()
    )
    with pytest.raises(ValueError, match="32 bytes"):
        KemPrivateKey.from_private_bytes(b"short")


def test_open_with_another_key_fails() -> None:
    sealed = hpke_seal(KemPrivateKey.generate().public_bytes(), b"secret", info=INFO)
    with pytest.raises(HpkeOpenFailed):
        hpke_open(KemPrivateKey.generate(), sealed, info=INFO)


def test_open_with_another_info_fails() -> None:
    recipient = KemPrivateKey.generate()
    sealed = hpke_seal(recipient.public_bytes(), b"secret", info=INFO)
    with pytest.raises(HpkeOpenFailed):
        hpke_open(recipient, sealed, info=INFO + b"x")


def test_every_flipped_byte_fails() -> None:
    recipient = KemPrivateKey.generate()
    sealed = hpke_seal(recipient.public_bytes(), b"k" * 32, info=INFO)
    for i in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[i] ^= 0x01
        with pytest.raises(HpkeOpenFailed):
            hpke_open(recipient, bytes(tampered), info=INFO)


def test_every_truncation_and_an_extension_fail() -> None:
    recipient = KemPrivateKey.generate()
    sealed = hpke_seal(recipient.public_bytes(), b"k" * 32, info=INFO)
    for cut in range(len(sealed)):
        with pytest.raises(HpkeOpenFailed):
            hpke_open(recipient, sealed[:cut], info=INFO)
    with pytest.raises(HpkeOpenFailed):
        hpke_open(recipient, sealed + b"\x00", info=INFO)


def test_oversized_sealed_message_is_refused_before_decrypting() -> None:
    with pytest.raises(HpkeOpenFailed):
        hpke_open(
            KemPrivateKey.generate(), bytes(HPKE_OVERHEAD + HPKE_MAX_PLAINTEXT_SIZE + 1), info=INFO
        )


@pytest.mark.parametrize(
    "public",
    [
        bytes(32),  # u = 0
        (1).to_bytes(32, "little"),  # u = 1, a point of order 4
    ],
)
def test_low_order_recipient_keys_are_refused(public: bytes) -> None:
    with pytest.raises(ValueError, match="shared key"):
        hpke_seal(public, b"k" * 32, info=INFO)


def test_caller_bugs_are_loud() -> None:
    recipient = KemPrivateKey.generate()
    public = recipient.public_bytes()
    with pytest.raises(ValueError, match="32 bytes"):
        hpke_seal(public[:31], b"k", info=INFO)
    with pytest.raises(ValueError, match="info"):
        hpke_seal(public, b"k", info=b"")
    with pytest.raises(ValueError, match="info"):
        hpke_seal(public, b"k", info=b"i" * (HPKE_MAX_INFO_SIZE + 1))
    with pytest.raises(TypeError, match="info"):
        hpke_seal(public, b"k", info="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="plaintext"):
        hpke_seal(public, bytes(HPKE_MAX_PLAINTEXT_SIZE + 1), info=INFO)
    with pytest.raises(TypeError, match="KemPrivateKey"):
        hpke_open(recipient.private_bytes(), b"x" * 64, info=INFO)  # type: ignore[arg-type]
    assert len(hpke_seal(public, b"k", info=b"i" * HPKE_MAX_INFO_SIZE)) == HPKE_OVERHEAD + 1
