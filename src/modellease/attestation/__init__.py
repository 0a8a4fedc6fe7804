"""Remote attestation: evidence, the binding rule, appraisal policy, and TEE backends.

A verifier calls :func:`appraise` with :class:`Evidence` from an instance, an
:class:`AppraisalPolicy`, the nonce it issued and the time; it gets an
:class:`AppraisalResult` of verified claims or a typed
:class:`~modellease.errors.AttestationError` naming the failed step. Inside a TEE,
:func:`produce_evidence` binds :class:`InstanceClaims` into a hardware quote.
See ``docs/attestation.md``.
"""

from modellease.attestation.appraise import STEPS, AppraisalResult, appraise
from modellease.attestation.attester import Attester, produce_evidence
from modellease.attestation.backends.gramine import GramineAttester
from modellease.attestation.backends.simulated import SimulatedAttester, runtime_measurement
from modellease.attestation.backends.tsm import TsmAttester
from modellease.attestation.binding import InstanceClaims, binds, parse_claims, report_data_for
from modellease.attestation.collateral import CollateralSource, DirectoryCollateral
from modellease.attestation.evidence import Evidence, TeeKind
from modellease.attestation.policy import AppraisalPolicy, load_policy, policy_from_mapping
from modellease.attestation.verified import VerifiedQuote

__all__ = [
    "STEPS",
    "AppraisalPolicy",
    "AppraisalResult",
    "Attester",
    "CollateralSource",
    "DirectoryCollateral",
    "Evidence",
    "GramineAttester",
    "InstanceClaims",
    "SimulatedAttester",
    "TeeKind",
    "TsmAttester",
    "VerifiedQuote",
    "appraise",
    "binds",
    "load_policy",
    "parse_claims",
    "policy_from_mapping",
    "produce_evidence",
    "report_data_for",
    "runtime_measurement",
]
