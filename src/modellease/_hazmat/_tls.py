"""The node's TLS key (ECDSA P-256) and its self-signed certificate."""

from __future__ import annotations

import hashlib
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _spki_sha256(certificate: x509.Certificate) -> bytes:
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def certificate_key_sha256(certificate_der: bytes) -> bytes:
    """SHA-256 of the DER ``SubjectPublicKeyInfo`` of the key a DER certificate holds."""
    return _spki_sha256(x509.load_der_x509_certificate(certificate_der))


class TlsPrivateKey:
    """An ECDSA P-256 key for a TLS server, made in this process; never serialised to disk."""

    __slots__ = ("_key",)

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> TlsPrivateKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    def __repr__(self) -> str:
        return "TlsPrivateKey(<secret>)"

    def public_key_sha256(self) -> bytes:
        """SHA-256 of the DER ``SubjectPublicKeyInfo`` of the public key."""
        spki = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(spki).digest()

    def private_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: only to hand to OpenSSL through memory."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def self_signed_certificate(
        self,
        *,
        common_name: str,
        not_before: datetime,
        not_after: datetime,
        extension_oid: str,
        extension_value: bytes,
    ) -> bytes:
        """A self-signed DER certificate (not a CA) carrying one non-critical extension."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(extension_oid), extension_value),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )
