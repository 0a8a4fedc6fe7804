"""Appraisal: from untrusted evidence to verified claims, or one specific refusal.

``appraise`` follows the RATS architecture (RFC 9334): it is the Verifier, the policy is
the Appraisal Policy for Evidence, and it returns an Attestation Result. A refusal's
``step`` names the step that refused; nothing unverified leaves. dcap-qvl itself refuses
debug TEEs and unmatched or revoked TCB levels, so for SGX/TDX those errors
(``DebugRefusedError``, ``TcbRejectedError``) can come from step 4.

1. ``tee-allowed``      the policy admits this TEE kind (simulated: only with
                        ``unsafe_allow_simulated``)                                  [policy]
2. ``claims``           the claims are canonical v1 claims for this TEE kind         [binding.py]
3. ``nonce``            the claims carry the verifier's nonce (constant time)        [RFC 9334 §10]
4. ``vendor-signature`` the hardware evidence verifies to a pinned vendor root at
                        ``now``: DCAP (Intel quote spec) / SEV-SNP ABI spec §7.3 /
                        simulated development key                                    [backends]
5. ``debug``            debug TEEs are always refused                                [vendor specs]
6. ``tcb``              TCB status accepted, no denied advisory, collateral from a
                        recent enough TCB evaluation                                 [Intel PCS]
7. ``reference-values`` measurements match the policy's allow-lists                  [reference.py]
8. ``binding``          report data == SHA-512(domain || claims), all 64 bytes       [binding.py]

Freshness (single use, expiry) of the nonce is the caller's nonce store's job; this
function only checks that the claims carry the nonce the caller expected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from modellease._hazmat import ct_equal
from modellease.attestation.backends.dcap import verify_dcap
from modellease.attestation.backends.sev_snp import verify_snp
from modellease.attestation.backends.simulated import verify_simulated
from modellease.attestation.binding import InstanceClaims, binds, parse_claims
from modellease.attestation.collateral import CollateralSource
from modellease.attestation.evidence import Evidence, TeeKind
from modellease.attestation.policy import AppraisalPolicy
from modellease.attestation.reference import check_reference_values
from modellease.attestation.verified import Measurements, VerifiedQuote
from modellease.errors import (
    AttestationError,
    BindingMismatchError,
    DebugRefusedError,
    EvidenceFormatError,
    NonceMismatchError,
    SimulatedEvidenceError,
    TcbRejectedError,
    TeeNotAllowedError,
)
from modellease.keys import InstanceKemKey, InstanceSigningKey, Nonce

log = logging.getLogger("modellease.attestation")

STEPS = (
    "tee-allowed",
    "claims",
    "nonce",
    "vendor-signature",
    "debug",
    "tcb",
    "reference-values",
    "binding",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppraisalResult:
    """Verified facts about one TEE instance. Only :func:`appraise` makes these."""

    tee: TeeKind
    measurements: Measurements
    tcb_status: str | None
    advisory_ids: tuple[str, ...]
    nonce: Nonce
    kem_key: InstanceKemKey
    signing_key: InstanceSigningKey
    tls_key_sha256: bytes | None
    insecure: bool
    appraised_at: datetime

    def to_json_dict(self) -> dict[str, object]:
        return {
            "tee": self.tee.value,
            "insecure": self.insecure,
            "measurements": dict(self.measurements),
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "nonce": self.nonce.hex(),
            "kem_public_key": self.kem_key.hex(),
            "signing_public_key": self.signing_key.hex(),
            "tls_public_key_sha256": self.tls_key_sha256.hex() if self.tls_key_sha256 else None,
            "appraised_at": self.appraised_at.isoformat(),
        }


VendorVerifier = Callable[
    [Evidence, datetime, CollateralSource | None, AppraisalPolicy], VerifiedQuote
]

_VERIFIERS: Mapping[TeeKind, VendorVerifier] = MappingProxyType(
    {
        TeeKind.SIMULATED: lambda ev, now, _c, _p: verify_simulated(ev, now=now),
        TeeKind.SGX: lambda ev, now, c, p: verify_dcap(
            ev, now=now, collateral=c, accept_evidence_collateral=p.accept_evidence_collateral
        ),
        TeeKind.TDX: lambda ev, now, c, p: verify_dcap(
            ev, now=now, collateral=c, accept_evidence_collateral=p.accept_evidence_collateral
        ),
        TeeKind.SEV_SNP: lambda ev, now, _c, _p: verify_snp(ev.quote, ev.endorsements, now=now),
    }
)


def _step_tee_allowed(evidence: Evidence, policy: AppraisalPolicy) -> None:
    if evidence.tee is TeeKind.SIMULATED:
        if not policy.unsafe_allow_simulated:
            raise SimulatedEvidenceError(
                "simulated evidence is refused: the policy does not set unsafe_allow_simulated"
            )
        log.warning("INSECURE: appraising simulated TEE evidence; it proves nothing")
    if evidence.tee.value not in policy.allowed_tees:
        raise TeeNotAllowedError(f"the policy does not allow {evidence.tee.value} evidence")


def _step_claims(evidence: Evidence) -> InstanceClaims:
    claims = parse_claims(evidence.claims)
    if claims.tee != evidence.tee.value:
        raise EvidenceFormatError(f"claims name {claims.tee}, evidence is {evidence.tee.value}")
    return claims


def _step_nonce(claims: InstanceClaims, expected: Nonce) -> None:
    if not ct_equal(claims.nonce_bytes, expected):
        raise NonceMismatchError("the claims do not carry the nonce this verifier issued")


def _step_debug(quote: VerifiedQuote) -> None:
    if quote.debug:
        raise DebugRefusedError("the TEE runs in debug mode: the host can read its memory")


def _step_tcb(quote: VerifiedQuote, policy: AppraisalPolicy) -> None:
    if quote.tcb_status is not None and quote.tcb_status not in policy.accepted_tcb_statuses:
        raise TcbRejectedError(f"TCB status {quote.tcb_status} is not accepted by the policy")
    denied = sorted(set(quote.advisory_ids) & set(policy.denied_advisories))
    if denied:
        raise TcbRejectedError(f"the platform is affected by denied advisories {denied}")
    floor = policy.min_tcb_evaluation_data_number
    if floor is not None and (quote.tcb_evaluation_data_number or -1) < floor:
        raise TcbRejectedError(
            f"collateral from TCB evaluation {quote.tcb_evaluation_data_number} is older than "
            f"the policy's minimum {floor}"
        )


def _step_binding(quote: VerifiedQuote, evidence: Evidence) -> None:
    if not binds(quote.report_data, evidence.claims):
        raise BindingMismatchError("the report data is not the hash of the received claims")


def appraise(
    evidence: Evidence,
    *,
    policy: AppraisalPolicy,
    expected_nonce: Nonce,
    now: datetime,
    collateral: CollateralSource | None = None,
) -> AppraisalResult:
    """Appraise ``evidence`` at time ``now``; return verified claims or raise the failed step."""
    step = STEPS[0]
    try:
        _step_tee_allowed(evidence, policy)
        step = "claims"
        claims = _step_claims(evidence)
        step = "nonce"
        _step_nonce(claims, expected_nonce)
        step = "vendor-signature"
        quote = _VERIFIERS[evidence.tee](evidence, now, collateral, policy)
        step = "debug"
        _step_debug(quote)
        step = "tcb"
        _step_tcb(quote, policy)
        step = "reference-values"
        check_reference_values(quote, policy)
        step = "binding"
        _step_binding(quote, evidence)
    except AttestationError as exc:
        exc.step = f"{STEPS.index(step) + 1}. {step}"
        raise
    return AppraisalResult(
        tee=evidence.tee,
        measurements=quote.measurements,
        tcb_status=quote.tcb_status,
        advisory_ids=quote.advisory_ids,
        nonce=claims.nonce_bytes,
        kem_key=claims.kem_key,
        signing_key=claims.signing_key,
        tls_key_sha256=(
            bytes.fromhex(claims.tls_public_key_sha256) if claims.tls_public_key_sha256 else None
        ),
        insecure=quote.insecure,
        appraised_at=now,
    )
