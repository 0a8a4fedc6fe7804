"""Appraisal end to end: each numbered step refuses with its own error, nothing else passes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from modellease.attestation import (
    Evidence,
    SimulatedAttester,
    TeeKind,
    appraise,
    policy_from_mapping,
    produce_evidence,
    runtime_measurement,
)
from modellease.attestation.backends.simulated import QUOTE_SIZE, verify_simulated
from modellease.errors import (
    BindingMismatchError,
    CollateralError,
    DebugRefusedError,
    EvidenceFormatError,
    EvidenceSignatureError,
    MeasurementRejectedError,
    NonceMismatchError,
    SimulatedEvidenceError,
    TcbRejectedError,
    TeeNotAllowedError,
)
from modellease.keys import Nonce
from tests.unit.attestation.support import NONCE, at, case, claims_for, dcap_evidence

NOW = datetime(2026, 11, 28, tzinfo=UTC)
MEASUREMENT = runtime_measurement(b"node config v1")
TDX_ANY = {"mrtd": ["00" * 48], "rtmr0": ["00" * 48], "rtmr1": ["00" * 48], "rtmr2": ["00" * 48]}


def sim_policy(**extra: Any) -> Any:
    return policy_from_mapping(
        {
            "allowed_tees": ["simulated"],
            "unsafe_allow_simulated": True,
            "simulated": {"measurement": [MEASUREMENT.hex()]},
        }
        | extra
    )


def sim_evidence(nonce: Nonce = NONCE, measurement: bytes = MEASUREMENT) -> Evidence:
    return produce_evidence(SimulatedAttester(measurement), claims_for(TeeKind.SIMULATED, nonce))


def test_simulated_evidence_appraises_and_is_marked_insecure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ev = sim_evidence()
    with caplog.at_level(logging.WARNING, logger="modellease.attestation"):
        result = appraise(ev, policy=sim_policy(), expected_nonce=NONCE, now=NOW)
    assert result.insecure
    assert "INSECURE" in caplog.text
    assert result.tee is TeeKind.SIMULATED
    assert result.measurements == {"measurement": MEASUREMENT.hex()}
    assert result.kem_key == b"\x11" * 32
    assert result.nonce == NONCE
    assert result.tcb_status is None
    assert result.to_json_dict()["insecure"] is True
    assert len(ev.quote) == QUOTE_SIZE


def test_runtime_measurement_depends_on_config_and_code() -> None:
    assert runtime_measurement(b"a") != runtime_measurement(b"b")
    assert runtime_measurement(b"a") == runtime_measurement(b"a")
    assert runtime_measurement(b"a", package="modellease.bundle") != runtime_measurement(b"a")
    assert len(runtime_measurement(b"")) == 48


def failing_step(exc: pytest.ExceptionInfo[Any]) -> str:
    return str(exc.value.step)


def test_step_1_policy_without_simulated_refuses_it() -> None:
    policy = policy_from_mapping({"allowed_tees": ["tdx"], "tdx": TDX_ANY})
    with pytest.raises(SimulatedEvidenceError, match="unsafe_allow_simulated") as exc:
        appraise(sim_evidence(), policy=policy, expected_nonce=NONCE, now=NOW)
    assert failing_step(exc) == "1. tee-allowed"


def test_step_1_tee_kind_not_allowed() -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    with pytest.raises(TeeNotAllowedError, match="does not allow sgx") as exc:
        appraise(dcap_evidence(c), policy=sim_policy(), expected_nonce=NONCE, now=at(c))
    assert failing_step(exc) == "1. tee-allowed"


def test_step_2_claims_for_another_tee_are_refused() -> None:
    ev = sim_evidence()
    swapped = Evidence(tee=ev.tee, quote=ev.quote, claims=claims_for(TeeKind.SGX).to_bytes())
    with pytest.raises(EvidenceFormatError, match="claims name sgx") as exc:
        appraise(swapped, policy=sim_policy(), expected_nonce=NONCE, now=NOW)
    assert failing_step(exc) == "2. claims"


def test_step_3_another_nonce_is_refused() -> None:
    with pytest.raises(NonceMismatchError) as exc:
        appraise(sim_evidence(), policy=sim_policy(), expected_nonce=Nonce(b"\xff" * 32), now=NOW)
    assert failing_step(exc) == "3. nonce"


def test_step_4_forged_simulated_signature_is_refused() -> None:
    ev = sim_evidence()
    forged = Evidence(tee=ev.tee, quote=ev.quote[:-1] + bytes([ev.quote[-1] ^ 1]), claims=ev.claims)
    with pytest.raises(EvidenceSignatureError) as exc:
        appraise(forged, policy=sim_policy(), expected_nonce=NONCE, now=NOW)
    assert failing_step(exc) == "4. vendor-signature"
    with pytest.raises(EvidenceFormatError, match="not a simulated quote"):
        verify_simulated(Evidence(tee=ev.tee, quote=b"x", claims=ev.claims), now=NOW)


def test_step_5_debug_td_is_refused() -> None:
    c = case("tdx-dcap/trustee_tdx_quote_4_debug.dat")
    policy = policy_from_mapping(
        {"allowed_tees": ["tdx"], "tdx": TDX_ANY, "accept_evidence_collateral": True}
    )
    with pytest.raises(DebugRefusedError, match="Debug mode is enabled"):
        appraise(dcap_evidence(c), policy=policy, expected_nonce=NONCE, now=at(c))


def sgx_policy(**extra: Any) -> Any:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    return policy_from_mapping(
        {
            "allowed_tees": ["sgx"],
            "sgx": {"mrenclave": [c["mr_enclave"]]},
            "accepted_tcb_statuses": ["UpToDate", "ConfigurationAndSWHardeningNeeded"],
            "accept_evidence_collateral": True,
        }
        | extra
    )


def test_step_6_tcb_status_not_accepted() -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    strict = sgx_policy(accepted_tcb_statuses=["UpToDate"])
    with pytest.raises(
        TcbRejectedError, match="ConfigurationAndSWHardeningNeeded is not accepted"
    ) as exc:
        appraise(dcap_evidence(c), policy=strict, expected_nonce=NONCE, now=at(c))
    assert failing_step(exc) == "6. tcb"


def test_step_6_denied_advisory() -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    with pytest.raises(TcbRejectedError, match="INTEL-SA-00615") as exc:
        appraise(
            dcap_evidence(c),
            policy=sgx_policy(denied_advisories=["INTEL-SA-00615"]),
            expected_nonce=NONCE,
            now=at(c),
        )
    assert failing_step(exc) == "6. tcb"


def test_step_7_measurement_not_in_policy() -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    other = sgx_policy(sgx={"mrenclave": ["00" * 32]})
    with pytest.raises(MeasurementRejectedError, match="SGX enclave identity") as exc:
        appraise(dcap_evidence(c), policy=other, expected_nonce=NONCE, now=at(c))
    assert failing_step(exc) == "7. reference-values"
    wrong_sim = sim_evidence(measurement=b"\x01" * 48)
    with pytest.raises(MeasurementRejectedError, match="simulated runtime measurement"):
        appraise(wrong_sim, policy=sim_policy(), expected_nonce=NONCE, now=NOW)


@pytest.mark.parametrize(
    "quote_name",
    [
        "sgx-dcap/phala_sgx_quote",
        "tdx-dcap/phala_tdx_quote",
        "tdx-dcap/gotdxguest_quote_v5_sample.dat",
    ],
)
def test_step_8_real_vectors_pass_every_step_but_the_binding(quote_name: str) -> None:
    """Recorded quotes bind someone else's report data: all checks pass until step 8."""
    c = case(quote_name, result="ok")
    if c["tee"] == "SGX":
        policy = sgx_policy()
    else:
        policy = policy_from_mapping(
            {
                "allowed_tees": ["tdx"],
                "tdx": {
                    "mrtd": [c["mr_td"]],
                    "rtmr0": [c["rtmr0"]],
                    "rtmr1": [c["rtmr1"]],
                    "rtmr2": [c["rtmr2"]],
                    "rtmr3": [c["rtmr3"]],
                    "td_attributes": c["td_attributes"],
                },
                "accept_evidence_collateral": True,
            }
        )
    with pytest.raises(BindingMismatchError) as exc:
        appraise(dcap_evidence(c), policy=policy, expected_nonce=NONCE, now=at(c))
    assert failing_step(exc) == "8. binding"


def test_step_8_claims_swapped_for_other_keys_are_refused() -> None:
    """A relay that keeps the quote but substitutes its own keys fails the binding."""
    ev = sim_evidence()
    theirs = claims_for(TeeKind.SIMULATED).model_copy(update={"kem_public_key": "33" * 32})
    swapped = Evidence(tee=ev.tee, quote=ev.quote, claims=theirs.to_bytes())
    with pytest.raises(BindingMismatchError) as exc:
        appraise(swapped, policy=sim_policy(), expected_nonce=NONCE, now=NOW)
    assert failing_step(exc) == "8. binding"


def test_produce_evidence_refuses_claims_for_another_tee() -> None:
    with pytest.raises(ValueError, match="claims for sgx"):
        produce_evidence(SimulatedAttester(MEASUREMENT), claims_for(TeeKind.SGX))
    with pytest.raises(ValueError, match="48 bytes"):
        SimulatedAttester(b"short")
    with pytest.raises(ValueError, match="64 bytes"):
        SimulatedAttester(MEASUREMENT).attest(b"short")


def test_step_4_evidence_collateral_needs_the_policys_consent() -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    policy = sgx_policy(accept_evidence_collateral=False)
    with pytest.raises(CollateralError, match="brings its own DCAP collateral") as exc:
        appraise(dcap_evidence(c), policy=policy, expected_nonce=NONCE, now=at(c))
    assert failing_step(exc) == "4. vendor-signature"


def test_step_6_collateral_older_than_the_policys_evaluation_number() -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    with pytest.raises(
        TcbRejectedError, match="TCB evaluation 17 is older than the policy's minimum 18"
    ) as exc:
        appraise(
            dcap_evidence(c),
            policy=sgx_policy(min_tcb_evaluation_data_number=18),
            expected_nonce=NONCE,
            now=at(c),
        )
    assert failing_step(exc) == "6. tcb"
