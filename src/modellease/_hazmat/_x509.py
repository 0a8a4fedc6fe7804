"""X.509 encodings: loading certificate chains and writing them back canonically."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


def load_pem_chain(data: bytes) -> list[x509.Certificate]:
    """Parse concatenated PEM certificates; raises ``ValueError`` if any is malformed."""
    try:
        return x509.load_pem_x509_certificates(data)
    except x509.InvalidVersion as exc:  # not a ValueError in cryptography
        raise ValueError(f"unsupported X.509 version: {exc}") from None


def certificate_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.PEM)
