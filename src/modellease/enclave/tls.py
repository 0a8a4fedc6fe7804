"""The node's TLS identity: a key made inside the TEE, a self-signed certificate carrying
the enrolment evidence, and the server context uvicorn serves with.

Rules (the binding itself: :mod:`modellease.attestation.tls`):

* the key (ECDSA P-256) is generated in this process at boot, before enrolment, so the
  enrolment evidence already binds it; it never touches a disk: OpenSSL reads it from an
  anonymous memory file (``memfd_create``) that is closed as soon as the context holds it;
* the certificate's validity plays no part in trust (the attested key does, and the lease
  bounds how long the node serves): it starts a day before boot by the wall clock, which
  TLS clients compare it with (not the lease clock, which tests move by hand), and has no
  end (``99991231235959Z``, RFC 5280 4.1.2.5), so no client clock can make it fail;
* the server speaks TLS 1.2 or newer and asks nothing of clients.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modellease._hazmat import TlsPrivateKey
from modellease.attestation.tls import EVIDENCE_EXTENSION_OID

NOT_BEFORE_SLACK = timedelta(days=1)  # tolerate clients whose clocks run behind
NO_EXPIRY = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # RFC 5280: no defined end


@dataclass(frozen=True, slots=True)
class NodeCertificate:
    """The node's TLS key and its self-signed certificate: what its HTTPS server presents."""

    key: TlsPrivateKey
    der: bytes

    @classmethod
    def issue(cls, key: TlsPrivateKey, *, evidence: bytes, name: str) -> NodeCertificate:
        """Self-sign a certificate for ``key`` that carries ``evidence`` (JSON)."""
        der = key.self_signed_certificate(
            common_name=name,
            not_before=datetime.now(UTC) - NOT_BEFORE_SLACK,
            not_after=NO_EXPIRY,
            extension_oid=EVIDENCE_EXTENSION_OID,
            extension_value=evidence,
        )
        return cls(key=key, der=der)

    @property
    def pem(self) -> str:
        return ssl.DER_cert_to_PEM_cert(self.der)

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context holding this key and certificate (the key read from memory)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with (
            _memory_file(self.pem.encode()) as certfile,
            _memory_file(self.key.private_pem()) as keyfile,
        ):
            context.load_cert_chain(certfile, keyfile)
        return context


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` in an anonymous memory file, closed (freed) when the block ends."""
    fd = os.memfd_create("modellease-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
