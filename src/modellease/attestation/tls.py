"""How a node's TLS key is bound to its TEE evidence (attested TLS).

Rules:

* the node's TLS key is generated inside the TEE at start-up and never leaves it; the SHA-256
  of its DER ``SubjectPublicKeyInfo`` is a field of the instance claims
  (``tls_public_key_sha256``), so the evidence's report data covers it;
* the node's certificate is self-signed: its identity is its key, proven by the evidence,
  not by a certificate authority. As in RA-TLS, the certificate also carries the enrolment
  evidence in a non-critical extension (:data:`EVIDENCE_EXTENSION_OID`), for clients that
  appraise from the handshake alone; our client asks for fresh evidence bound to its own
  nonce instead;
* a client compares the hash of the key the handshake presented with the hash in the
  appraised claims, and from then on talks to the node only over connections that trust
  that one certificate.
"""

from __future__ import annotations

from cryptography import x509

from modellease._hazmat import certificate_key_sha256

# A UUID-derived OID (ITU-T X.667, arc 2.25): modellease's own, no registration needed.
EVIDENCE_EXTENSION_OID = "2.25.229587138840839076434581166465115144665"

__all__ = ["EVIDENCE_EXTENSION_OID", "certificate_key_sha256", "evidence_in_certificate"]


def evidence_in_certificate(certificate_der: bytes) -> bytes | None:
    """The evidence (JSON) a node's certificate carries, if any. Unverified: appraise it."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    oid = x509.ObjectIdentifier(EVIDENCE_EXTENSION_OID)
    try:
        extension = certificate.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    value = extension.value
    if not isinstance(value, x509.UnrecognizedExtension):  # pragma: no cover - our own OID
        return None
    return value.value
