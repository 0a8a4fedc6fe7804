"""An independent RFC 9180 base-mode reference, for known answers and interoperability.

Written from the RFC's pseudocode (§4, §4.1, §5.1, §5.2, §7.1.3) with the standard
library's HMAC for HKDF, so it shares nothing with ``cryptography``'s HPKE but the X25519
and AES-GCM primitives. It is checked against RFC 9180 Appendix A.1.1 below; then it
checks ``modellease._hazmat._hpke`` for the AES-256-GCM suite, for which the RFC prints
no X25519 vector.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEM_X25519_HKDF_SHA256 = 0x0020
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_128_GCM = 0x0001
AEAD_AES_256_GCM = 0x0002
_NK = {AEAD_AES_128_GCM: 16, AEAD_AES_256_GCM: 32}
_NN = 12
_NH = 32
_VERSION = b"HPKE-v1"
_KEM_SUITE_ID = b"KEM" + KEM_X25519_HKDF_SHA256.to_bytes(2, "big")
MODE_BASE = 0x00


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()  # RFC 5869: empty salt = zeros


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, _VERSION + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled_info = length.to_bytes(2, "big") + _VERSION + suite_id + label + info
    return _expand(prk, labeled_info, length)


def derive_key_pair(ikm: bytes) -> tuple[bytes, bytes]:
    """RFC 9180 §7.1.3 DeriveKeyPair for X25519: (skX, pkX) raw."""
    dkp_prk = labeled_extract(_KEM_SUITE_ID, b"", b"dkp_prk", ikm)
    sk = labeled_expand(_KEM_SUITE_ID, dkp_prk, b"sk", b"", 32)
    return sk, public_of(sk)


def public_of(sk: bytes) -> bytes:
    return (
        X25519PrivateKey.from_private_bytes(sk)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


def _dh(sk: bytes, pk: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(sk).exchange(X25519PublicKey.from_public_bytes(pk))


def _shared_secret(dh: bytes, enc: bytes, pk_r: bytes) -> bytes:
    eae_prk = labeled_extract(_KEM_SUITE_ID, b"", b"eae_prk", dh)
    return labeled_expand(_KEM_SUITE_ID, eae_prk, b"shared_secret", enc + pk_r, 32)


@dataclass(frozen=True)
class Context:
    shared_secret: bytes
    key_schedule_context: bytes
    secret: bytes
    key: bytes
    base_nonce: bytes
    exporter_secret: bytes


def key_schedule(aead_id: int, shared_secret: bytes, info: bytes) -> Context:
    suite_id = (
        b"HPKE"
        + KEM_X25519_HKDF_SHA256.to_bytes(2, "big")
        + KDF_HKDF_SHA256.to_bytes(2, "big")
        + aead_id.to_bytes(2, "big")
    )
    psk_id_hash = labeled_extract(suite_id, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(suite_id, b"", b"info_hash", info)
    context = bytes([MODE_BASE]) + psk_id_hash + info_hash
    secret = labeled_extract(suite_id, shared_secret, b"secret", b"")
    return Context(
        shared_secret=shared_secret,
        key_schedule_context=context,
        secret=secret,
        key=labeled_expand(suite_id, secret, b"key", context, _NK[aead_id]),
        base_nonce=labeled_expand(suite_id, secret, b"base_nonce", context, _NN),
        exporter_secret=labeled_expand(suite_id, secret, b"exp", context, _NH),
    )


def setup_sender(aead_id: int, pk_r: bytes, info: bytes, *, sk_e: bytes) -> tuple[bytes, Context]:
    """SetupBaseS with a fixed ephemeral key (the RFC's DeriveKeyPair(ikmE) seam)."""
    enc = public_of(sk_e)
    return enc, key_schedule(aead_id, _shared_secret(_dh(sk_e, pk_r), enc, pk_r), info)


def setup_receiver(aead_id: int, enc: bytes, sk_r: bytes, info: bytes) -> Context:
    return key_schedule(aead_id, _shared_secret(_dh(sk_r, enc), enc, public_of(sk_r)), info)


def seal(aead_id: int, pk_r: bytes, info: bytes, aad: bytes, pt: bytes, *, sk_e: bytes) -> bytes:
    """Single-shot seal (sequence 0): ``enc || ct``."""
    enc, ctx = setup_sender(aead_id, pk_r, info, sk_e=sk_e)
    return enc + AESGCM(ctx.key).encrypt(ctx.base_nonce, pt, aad)


def open_(aead_id: int, sk_r: bytes, info: bytes, aad: bytes, sealed: bytes) -> bytes:
    enc, ct = sealed[:32], sealed[32:]
    ctx = setup_receiver(aead_id, enc, sk_r, info)
    return AESGCM(ctx.key).decrypt(ctx.base_nonce, ct, aad)


# RFC 9180 Appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, Base.
A1 = {
    "info": "4f6465206f6e2061204772656369616e2055726e",
    "ikmE": "7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234",
    "pkEm": "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
    "skEm": "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736",
    "ikmR": "6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037",
    "pkRm": "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
    "skRm": "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
    "enc": "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
    "shared_secret": "fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc",
    "key_schedule_context": (
        "00725611c9d98c07c03f60095cd32d400d8347d45ed67097bbad50fc56da742d07"
        "cb6cffde367bb0565ba28bb02c90744a20f5ef37f30523526106f637abb05449"
    ),
    "secret": "12fff91991e93b48de37e7daddb52981084bd8aa64289c3788471d9a9712f397",
    "key": "4531685d41d65f03dc48f6b8302c05b0",
    "base_nonce": "56d890e5accaaf011cff4b7d",
    "exporter_secret": "45ff1c2e220db587171952c0592d5f5ebe103f1561a2614e38f2ffd47e99e3f8",
    # A.1.1.1, sequence number 0
    "pt": "4265617574792069732074727574682c20747275746820626561757479",
    "aad": "436f756e742d30",
    "ct": (
        "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a"
    ),
}
