"""Reference values: does a verified TEE match what the policy allows? Pure functions.

Rules:

* SGX: MRENCLAVE in the allow-list, or (the policy has one or the other) MRSIGNER equal, ISV
  product id equal and ISV SVN at least the minimum (Intel SGX Developer Reference,
  "Enclave identity");
* TDX: MRTD and RTMR0-2 in their allow-lists; RTMR3, MRCONFIGID and the exact TD
  attributes / XFAM when the policy gives them (Intel TDX Module spec, TDREPORT);
* SEV-SNP: launch measurement (and HOST_DATA) in the allow-lists; VMPL and signing-key kind
  allowed; guest policy bits (SMT, migration agent, single socket) as configured; every
  reported TCB component at or above the floor, which must name FMC on Turin (AMD SEV-SNP
  ABI spec, ATTESTATION_REPORT, GUEST_POLICY and TCB_VERSION);
* simulated: measurement in the allow-list;
* a mismatch raises :class:`MeasurementRejectedError` (a TCB floor: :class:`TcbRejectedError`)
  naming the field, never the allowed values.
"""

from __future__ import annotations

from modellease.attestation.backends.sev_snp import (
    POLICY_MIGRATE_MA,
    POLICY_SINGLE_SOCKET,
    POLICY_SMT,
)
from modellease.attestation.policy import (
    AppraisalPolicy,
    SgxReference,
    SimulatedReference,
    SnpReference,
    TdxReference,
)
from modellease.attestation.verified import Measurements, VerifiedQuote
from modellease.errors import MeasurementRejectedError, TcbRejectedError


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise MeasurementRejectedError(f"{what} is not allowed by the policy")


def check_sgx(m: Measurements, ref: SgxReference) -> None:
    by_enclave = ref.mrenclave is not None and m["mrenclave"] in ref.mrenclave
    by_signer = (
        ref.mrsigner is not None
        and m["mrsigner"] == ref.mrsigner
        and m["isv_prod_id"] == ref.isv_prod_id
        and int(m["isv_svn"]) >= (ref.min_isv_svn or 0)
    )
    _require(by_enclave or by_signer, "SGX enclave identity (MRENCLAVE, or MRSIGNER/ISV)")


def check_tdx(m: Measurements, ref: TdxReference) -> None:
    _require(m["mrtd"] in ref.mrtd, "TDX MRTD")
    for name in ("rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_config_id"):
        allowed: list[str] | None = getattr(ref, name)
        if allowed is not None:
            _require(m[name] in allowed, f"TDX {name.upper()}")
    for name in ("td_attributes", "xfam"):
        exact: str | None = getattr(ref, name)
        if exact is not None:
            _require(m[name] == exact, f"TDX {name.upper()}")


def check_snp(m: Measurements, ref: SnpReference) -> None:
    _require(m["measurement"] in ref.measurement, "SEV-SNP launch measurement")
    if ref.host_data is not None:
        _require(m["host_data"] in ref.host_data, "SEV-SNP HOST_DATA")
    _require(m["vmpl"] in ref.allowed_vmpls, "SEV-SNP VMPL")
    _require(m["signing_key"] in ref.signing_keys, "SEV-SNP signing key kind")
    policy = int(m["policy"])
    _require(ref.allow_smt or not policy & POLICY_SMT, "SEV-SNP guest policy SMT")
    _require(
        ref.allow_migration_agent or not policy & POLICY_MIGRATE_MA,
        "SEV-SNP guest policy MIGRATE_MA",
    )
    _require(
        not ref.require_single_socket or bool(policy & POLICY_SINGLE_SOCKET),
        "SEV-SNP guest policy without SINGLE_SOCKET",
    )
    floor = ref.min_tcb.model_dump(exclude_none=True)
    if "tcb_fmc" in m and "fmc" not in floor:
        raise TcbRejectedError("SEV-SNP report has an FMC TCB (Turin); the policy has no fmc floor")
    for component, minimum in floor.items():
        if int(m.get(f"tcb_{component}", -1)) < minimum:
            raise TcbRejectedError(f"SEV-SNP reported TCB {component} is below the policy floor")


def check_simulated(m: Measurements, ref: SimulatedReference) -> None:
    _require(m["measurement"] in ref.measurement, "simulated runtime measurement")


def check_reference_values(quote: VerifiedQuote, policy: AppraisalPolicy) -> None:
    """Dispatch to the TEE's check with the policy's section for it."""
    m = quote.measurements
    if policy.sgx is not None and quote.tee == "sgx":
        check_sgx(m, policy.sgx)
    elif policy.tdx is not None and quote.tee == "tdx":
        check_tdx(m, policy.tdx)
    elif policy.sev_snp is not None and quote.tee == "sev-snp":
        check_snp(m, policy.sev_snp)
    elif policy.simulated is not None and quote.tee == "simulated":
        check_simulated(m, policy.simulated)
    else:
        raise MeasurementRejectedError(f"the policy has no reference values for {quote.tee}")
