"""Reference-value checks (pure), and SEV-SNP vectors through the whole appraisal."""

from __future__ import annotations

from typing import Any

import pytest

from modellease.attestation import Evidence, TeeKind, VerifiedQuote, appraise, policy_from_mapping
from modellease.attestation.backends.sev_snp import verify_snp
from modellease.attestation.reference import check_reference_values, check_sgx, check_snp, check_tdx
from modellease.errors import (
    BindingMismatchError,
    DebugRefusedError,
    MeasurementRejectedError,
    TcbRejectedError,
)
from tests.unit.attestation.sev_snp.snp_vectors import (
    DEBUG_REPORT,
    TRUSTEE_REPORT,
    VLEK_REPORT,
    case_for,
    endorsements_of,
    now_of,
    report_of,
)
from tests.unit.attestation.support import NONCE, claims_for

H32, H48 = "aa" * 32, "bb" * 48


def sgx_policy(section: dict[str, Any]) -> Any:
    return policy_from_mapping({"allowed_tees": ["sgx"], "sgx": section})


SGX_M = {"mrenclave": H32, "mrsigner": "cc" * 32, "isv_prod_id": 7, "isv_svn": 3}


@pytest.mark.parametrize(
    ("section", "ok"),
    [
        ({"mrenclave": [H32]}, True),
        ({"mrenclave": ["00" * 32]}, False),
        ({"mrsigner": "cc" * 32, "isv_prod_id": 7, "min_isv_svn": 3}, True),
        ({"mrsigner": "cc" * 32, "isv_prod_id": 7, "min_isv_svn": 4}, False),
        ({"mrsigner": "cc" * 32, "isv_prod_id": 8, "min_isv_svn": 0}, False),
        ({"mrsigner": "dd" * 32, "isv_prod_id": 7, "min_isv_svn": 0}, False),
    ],
)
def test_sgx_identity(section: dict[str, Any], ok: bool) -> None:
    ref = sgx_policy(section).sgx
    if ok:
        check_sgx(SGX_M, ref)
    else:
        with pytest.raises(MeasurementRejectedError, match="SGX enclave identity"):
            check_sgx(SGX_M, ref)


TDX_M = {
    "mrtd": H48,
    "rtmr0": "00" * 48,
    "rtmr1": "01" * 48,
    "rtmr2": "02" * 48,
    "rtmr3": "03" * 48,
    "mr_config_id": "04" * 48,
    "td_attributes": "0000001000000000",
    "xfam": "e702060000000000",
}


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        ({}, None),
        ({"rtmr1": ["01" * 48, "ff" * 48]}, None),
        ({"rtmr2": ["ff" * 48]}, "TDX RTMR2"),
        ({"rtmr3": ["ff" * 48]}, "TDX RTMR3"),
        ({"mr_config_id": ["ff" * 48]}, "TDX MR_CONFIG_ID"),
        ({"td_attributes": "0000000000000000"}, "TDX TD_ATTRIBUTES"),
        ({"xfam": "0000000000000000"}, "TDX XFAM"),
        ({"td_attributes": "0000001000000000", "xfam": "e702060000000000"}, None),
    ],
)
def test_tdx_reference_values(extra: dict[str, Any], refused: str | None) -> None:
    base = {"mrtd": [H48], "rtmr0": ["00" * 48], "rtmr1": ["01" * 48], "rtmr2": ["02" * 48]}
    ref = policy_from_mapping({"allowed_tees": ["tdx"], "tdx": base | extra}).tdx
    assert ref is not None
    if refused is None:
        check_tdx(TDX_M, ref)
    else:
        with pytest.raises(MeasurementRejectedError, match=refused):
            check_tdx(TDX_M, ref)
    with pytest.raises(MeasurementRejectedError, match="TDX MRTD"):
        check_tdx(TDX_M | {"mrtd": "ff" * 48}, ref)


SNP_M = {
    "measurement": H48,
    "host_data": H32,
    "vmpl": 0,
    "signing_key": "vcek",
    "policy": 0x30000,
    "tcb_boot_loader": 3,
    "tcb_tee": 0,
    "tcb_snp": 8,
    "tcb_microcode": 115,
}


@pytest.mark.parametrize(
    ("extra", "measured", "refused"),
    [
        ({}, {}, None),
        ({"host_data": ["00" * 32]}, {}, "HOST_DATA"),
        ({}, {"vmpl": 1}, "VMPL"),
        ({"allowed_vmpls": [0, 1]}, {"vmpl": 1}, None),
        ({}, {"signing_key": "vlek"}, "signing key kind"),
        ({"allow_smt": False}, {}, "SMT"),
        ({"allow_smt": False}, {"policy": 0x20000}, None),
        ({}, {"policy": 0x70000}, "MIGRATE_MA"),
        ({"allow_migration_agent": True}, {"policy": 0x70000}, None),
        ({"require_single_socket": True}, {}, "SINGLE_SOCKET"),
        ({"require_single_socket": True}, {"policy": 0x130000}, None),
        ({"min_tcb": {"boot_loader": 3, "tee": 0, "snp": 8, "microcode": 115}}, {}, None),
        ({"min_tcb": {"boot_loader": 3, "tee": 0, "snp": 9, "microcode": 115}}, {}, "snp is below"),
        (
            {"min_tcb": {"boot_loader": 0, "tee": 0, "snp": 0, "microcode": 0, "fmc": 1}},
            {},
            "fmc is below",
        ),
        ({}, {"tcb_fmc": 1}, "no fmc floor"),
        (
            {"min_tcb": {"boot_loader": 0, "tee": 0, "snp": 0, "microcode": 0, "fmc": 1}},
            {"tcb_fmc": 1},
            None,
        ),
    ],
)
def test_snp_reference_values(
    extra: dict[str, Any], measured: dict[str, Any], refused: str | None
) -> None:
    floor = {"min_tcb": {"boot_loader": 0, "tee": 0, "snp": 0, "microcode": 0}}
    ref = policy_from_mapping(
        {"allowed_tees": ["sev-snp"], "sev_snp": {"measurement": [H48]} | floor | extra}
    ).sev_snp
    assert ref is not None
    m = SNP_M | measured
    if refused is None:
        check_snp(m, ref)
    else:
        with pytest.raises((MeasurementRejectedError, TcbRejectedError), match=refused):
            check_snp(m, ref)
    with pytest.raises(MeasurementRejectedError, match="launch measurement"):
        check_snp(SNP_M | {"measurement": "00" * 48}, ref)


def test_dispatch_needs_the_section_for_the_quotes_tee() -> None:
    quote = VerifiedQuote(tee=TeeKind.TDX, report_data=bytes(64), debug=False, measurements=TDX_M)
    with pytest.raises(MeasurementRejectedError, match="no reference values for tdx"):
        check_reference_values(quote, sgx_policy({"mrenclave": [H32]}))


def snp_evidence(report: str) -> tuple[Evidence, Any]:
    c = case_for(report)
    ev = Evidence(
        tee=TeeKind.SEV_SNP,
        quote=report_of(c),
        claims=claims_for(TeeKind.SEV_SNP).to_bytes(),
        endorsements=endorsements_of(c),
    )
    return ev, c


@pytest.mark.parametrize("report", [TRUSTEE_REPORT, VLEK_REPORT])
def test_real_snp_reports_pass_every_step_but_the_binding(report: str) -> None:
    ev, c = snp_evidence(report)
    verified = verify_snp(ev.quote, ev.endorsements, now=now_of(c))
    m = verified.measurements
    policy = policy_from_mapping(
        {
            "allowed_tees": ["sev-snp"],
            "sev_snp": {
                "measurement": [m["measurement"]],
                "allowed_vmpls": [m["vmpl"]],
                "signing_keys": [m["signing_key"]],
                "min_tcb": {
                    "boot_loader": m["tcb_boot_loader"],
                    "tee": m["tcb_tee"],
                    "snp": m["tcb_snp"],
                    "microcode": m["tcb_microcode"],
                },
            },
        }
    )
    with pytest.raises(BindingMismatchError) as exc:
        appraise(ev, policy=policy, expected_nonce=NONCE, now=now_of(c))
    assert exc.value.step == "8. binding"


def test_debug_snp_guest_is_refused_at_the_debug_step() -> None:
    ev, c = snp_evidence(DEBUG_REPORT)
    policy = policy_from_mapping(
        {
            "allowed_tees": ["sev-snp"],
            "sev_snp": {
                "measurement": ["00" * 48],
                "min_tcb": {"boot_loader": 0, "tee": 0, "snp": 0, "microcode": 0},
            },
        }
    )
    with pytest.raises(DebugRefusedError) as exc:
        appraise(ev, policy=policy, expected_nonce=NONCE, now=now_of(c))
    assert exc.value.step == "5. debug"
