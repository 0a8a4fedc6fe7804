"""The only place in modellease that imports ``cryptography.hazmat``.

Everything security-relevant goes through these few small functions, so a reviewer
can audit every primitive, parameter and comparison in one directory. ruff's
banned-imports rule (TID251) keeps other modules out of ``cryptography.hazmat``.

* :mod:`._aead` — AES-256-GCM with caller-owned buffers.
* :mod:`._ed25519` — Ed25519 signing keys and verification.
* :mod:`._kdf` — scrypt (passphrases) and HKDF-SHA256 (sub-keys).
* :mod:`._hpke` — HPKE (RFC 9180) base mode, X25519/HKDF-SHA256/AES-256-GCM.
* :mod:`._ecdsa` — ECDSA P-384/SHA-384 verification (SEV-SNP reports).
* :mod:`._x509` — certificate chains in and out of PEM/DER.
* :mod:`._tls` — the node's TLS key (P-256) and its self-signed certificate.
* :func:`ct_equal` — the one constant-time comparison for secrets and digests.
"""

from modellease._hazmat._aead import (
    AEAD_KEY_SIZE,
    AEAD_NONCE_SIZE,
    AEAD_TAG_SIZE,
    AuthenticationFailed,
    FrameCipher,
    random_aead_key,
)
from modellease._hazmat._compare import ct_equal
from modellease._hazmat._ecdsa import ecdsa_p384_sha384_verify
from modellease._hazmat._ed25519 import (
    ED25519_PUBLIC_KEY_SIZE,
    ED25519_SEED_SIZE,
    ED25519_SIGNATURE_SIZE,
    SigningKey,
    ed25519_verify,
)
from modellease._hazmat._hpke import (
    HPKE_MAX_INFO_SIZE,
    HPKE_MAX_PLAINTEXT_SIZE,
    HPKE_OVERHEAD,
    HpkeOpenFailed,
    KemPrivateKey,
    hpke_open,
    hpke_seal,
)
from modellease._hazmat._kdf import ScryptParams, hkdf_sha256, scrypt
from modellease._hazmat._tls import TlsPrivateKey, certificate_key_sha256
from modellease._hazmat._x509 import certificate_der, certificate_pem, load_pem_chain

__all__ = [
    "AEAD_KEY_SIZE",
    "AEAD_NONCE_SIZE",
    "AEAD_TAG_SIZE",
    "ED25519_PUBLIC_KEY_SIZE",
    "ED25519_SEED_SIZE",
    "ED25519_SIGNATURE_SIZE",
    "HPKE_MAX_INFO_SIZE",
    "HPKE_MAX_PLAINTEXT_SIZE",
    "HPKE_OVERHEAD",
    "AuthenticationFailed",
    "FrameCipher",
    "HpkeOpenFailed",
    "KemPrivateKey",
    "ScryptParams",
    "SigningKey",
    "TlsPrivateKey",
    "certificate_der",
    "certificate_key_sha256",
    "certificate_pem",
    "ct_equal",
    "ecdsa_p384_sha384_verify",
    "ed25519_verify",
    "hkdf_sha256",
    "hpke_open",
    "hpke_seal",
    "load_pem_chain",
    "random_aead_key",
    "scrypt",
]
