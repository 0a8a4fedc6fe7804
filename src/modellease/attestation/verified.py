"""What a backend's vendor verification establishes about a TEE, before policy.

A :class:`VerifiedQuote` is produced only after the evidence's signature chain verified to
a pinned root at the appraisal time (or, for ``simulated``, to the published development
key). It is the input of the policy steps of :func:`~modellease.attestation.appraise`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from modellease.attestation.evidence import TeeKind

Measurements = Mapping[str, str | int]
"""Named values a policy compares: hex strings for digests, ints for numbers and flags."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedQuote:
    """Facts established by the vendor's signature chain (never by the attester's word)."""

    tee: TeeKind
    report_data: bytes
    debug: bool
    measurements: Measurements
    tcb_status: str | None = None  # DCAP's status; None for TEEs without one (SNP, simulated)
    tcb_evaluation_data_number: int | None = None  # DCAP: which Intel TCB evaluation judged it
    advisory_ids: tuple[str, ...] = ()
    insecure: bool = False
    details: Mapping[str, str] = field(default_factory=dict)  # informational, not policy

    def __post_init__(self) -> None:
        if len(self.report_data) != 64:
            raise ValueError("report data is 64 bytes")
        object.__setattr__(self, "measurements", MappingProxyType(dict(self.measurements)))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))
