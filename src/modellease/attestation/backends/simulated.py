"""The simulated TEE: software-signed evidence for development and tests. INSECURE.

Rules:

* the quote is ``MAGIC || measurement (48) || report_data (64) || Ed25519 signature (64)``,
  signed over a DSSE PAE with the development key derived from a public string: anyone can
  forge it, so it proves nothing about where the code runs;
* the measurement is the SHA-384 of the runtime's own code (every ``.py`` file of the
  installed ``modellease`` package) and of its configuration, so a changed runtime or
  config still changes the measurement a policy allow-lists;
* every verified simulated quote is marked ``insecure``; appraisal refuses it unless the
  policy says ``unsafe_allow_simulated = true``, and logs a warning each time it admits one.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime
from importlib import resources
from pathlib import PurePosixPath

from modellease._hazmat import SigningKey, ed25519_verify
from modellease.attestation.evidence import Evidence, TeeKind
from modellease.attestation.verified import VerifiedQuote
from modellease.errors import EvidenceFormatError, EvidenceSignatureError
from modellease.protocol import pae

MAGIC = b"MLSIMQ1\x00"
MEASUREMENT_SIZE = 48
REPORT_DATA_SIZE = 64
SIGNATURE_SIZE = 64
QUOTE_SIZE = len(MAGIC) + MEASUREMENT_SIZE + REPORT_DATA_SIZE + SIGNATURE_SIZE
PAYLOAD_TYPE = "application/vnd.modellease.simulated-quote.v1"
_MEASUREMENT_DOMAIN = b"modellease/simulated/v1/measurement\x00"

# Public on purpose: the simulated backend has no secret, and must never be mistaken for one.
DEVELOPMENT_KEY = SigningKey.from_seed(
    hashlib.sha256(b"modellease simulated TEE development key - INSECURE, PUBLIC").digest()
)


def runtime_measurement(config: bytes, package: str = "modellease") -> bytes:
    """SHA-384 over the package's Python sources (sorted by path) and the configuration."""
    h = hashlib.sha384(_MEASUREMENT_DOMAIN)
    root = resources.files(package)
    sources: list[tuple[str, bytes]] = []
    stack = [(root, PurePosixPath())]
    while stack:
        node, rel = stack.pop()
        for child in node.iterdir():
            if child.is_dir():
                stack.append((child, rel / child.name))
            elif child.name.endswith(".py"):
                sources.append((str(rel / child.name), child.read_bytes()))
    for path, content in sorted(sources):
        h.update(struct.pack(">I", len(path)) + path.encode() + hashlib.sha256(content).digest())
    h.update(b"\x00config\x00" + hashlib.sha256(config).digest())
    return h.digest()


class SimulatedAttester:
    """Produces simulated quotes for a fixed measurement. INSECURE: development only."""

    tee = TeeKind.SIMULATED

    def __init__(self, measurement: bytes) -> None:
        if len(measurement) != MEASUREMENT_SIZE:
            raise ValueError("a simulated measurement is 48 bytes")
        self._measurement = measurement

    def attest(self, report_data: bytes) -> tuple[bytes, dict[str, bytes]]:
        """Return (quote, endorsements) binding ``report_data``."""
        if len(report_data) != REPORT_DATA_SIZE:
            raise ValueError("report data is 64 bytes")
        body = MAGIC + self._measurement + report_data
        return body + DEVELOPMENT_KEY.sign(pae(PAYLOAD_TYPE, body)), {}


def verify_simulated(evidence: Evidence, *, now: datetime) -> VerifiedQuote:  # noqa: ARG001
    """Check the simulated quote's form and development signature; mark it insecure."""
    quote = evidence.quote
    if len(quote) != QUOTE_SIZE or not quote.startswith(MAGIC):
        raise EvidenceFormatError(f"not a simulated quote (expected {QUOTE_SIZE} bytes)", offset=0)
    body, signature = quote[:-SIGNATURE_SIZE], quote[-SIGNATURE_SIZE:]
    if not ed25519_verify(DEVELOPMENT_KEY.public_bytes(), signature, pae(PAYLOAD_TYPE, body)):
        raise EvidenceSignatureError("the simulated quote's signature does not verify")
    start = len(MAGIC)
    measurement = quote[start : start + MEASUREMENT_SIZE]
    report_data = quote[start + MEASUREMENT_SIZE : start + MEASUREMENT_SIZE + REPORT_DATA_SIZE]
    return VerifiedQuote(
        tee=TeeKind.SIMULATED,
        report_data=report_data,
        debug=False,
        measurements={"measurement": measurement.hex()},
        insecure=True,
        details={"warning": "simulated TEE: proves nothing about where this code runs"},
    )
