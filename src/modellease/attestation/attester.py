"""Producing evidence inside a TEE: claims, their binding, and the hardware quote."""

from __future__ import annotations

from typing import Protocol

from modellease.attestation.binding import InstanceClaims, report_data_for
from modellease.attestation.evidence import Evidence, TeeKind


class Attester(Protocol):
    """Something that turns 64 bytes of report data into hardware evidence."""

    @property
    def tee(self) -> TeeKind: ...

    def attest(self, report_data: bytes) -> tuple[bytes, dict[str, bytes]]:
        """Return (quote, endorsements) whose report data is ``report_data``."""
        ...


def produce_evidence(attester: Attester, claims: InstanceClaims) -> Evidence:
    """Bind ``claims`` into the attester's evidence: report data = hash of the claims."""
    if claims.tee != attester.tee.value:
        raise ValueError(f"claims for {claims.tee} given to a {attester.tee.value} attester")
    raw = claims.to_bytes()
    quote, endorsements = attester.attest(report_data_for(raw))
    return Evidence(tee=attester.tee, quote=quote, claims=raw, endorsements=endorsements)
