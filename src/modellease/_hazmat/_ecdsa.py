"""ECDSA P-384 / SHA-384 verification against a certificate's key (SEV-SNP reports).

Rules:

* the verifying key must be an EC key on P-384; any other key type or curve is a failure,
  never a fallback;
* verification answers ``True`` or ``False``; it never raises on a bad signature.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def ecdsa_p384_sha384_verify(cert: x509.Certificate, *, r: int, s: int, message: bytes) -> bool:
    """Whether (``r``, ``s``) is an ECDSA P-384/SHA-384 signature of ``message`` by ``cert``."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        return False
    try:
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return True
