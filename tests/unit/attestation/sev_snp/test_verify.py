"""verify_snp on recorded reports: what verifies, what it proves, and each step's refusal."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from modellease.attestation.backends.sev_snp import (
    EndorsementKind,
    Product,
    SigningKey,
    SnpReport,
    TcbComponents,
    check_chain,
    check_chip_id,
    check_report_signature,
    check_reported_tcb,
    check_signing_key,
    check_validity,
    load_certificate,
    pinned_chain,
    snp_measurements,
    verify_snp,
)
from modellease.attestation.evidence import TeeKind
from modellease.errors import CollateralError, EvidenceFormatError, EvidenceSignatureError
from tests.unit.attestation.sev_snp.snp_vectors import (
    CASE_IDS,
    CASES,
    DEBUG_REPORT,
    TRUSTEE_REPORT,
    TURIN_VCEK,
    VIRTEE_REPORT,
    VLEK_REPORT,
    case_for,
    endorsements_of,
    now_of,
    read,
    report_of,
    utc,
)

MILAN_KEYS = {
    "measurement", "host_data", "policy", "vmpl", "signing_key", "guest_svn", "version",
    "family_id", "image_id", "id_key_digest", "tcb_boot_loader", "tcb_tee", "tcb_snp",
    "tcb_microcode", "product",
}  # fmt: skip
SECOND = timedelta(seconds=1)


def verify_case(case: dict[str, Any], **changes: Any) -> Any:
    quote = changes.pop("quote", report_of(case))
    endorsements = changes.pop("endorsements", endorsements_of(case))
    now = changes.pop("now", now_of(case))
    assert not changes
    return verify_snp(quote, endorsements, now=now)


# ---------------------------------------------------------------- recorded reports verify


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_recorded_report_verifies_with_its_recorded_facts(case: dict[str, Any]) -> None:
    quote = verify_case(case)
    m = quote.measurements
    raw_tcb = bytes.fromhex(case["reported_tcb"])
    assert quote.tee is TeeKind.SEV_SNP
    assert quote.report_data.hex() == case["report_data"]
    assert quote.debug is case["debug_allowed"]
    assert quote.tcb_status is None
    assert not quote.insecure
    assert set(m) == MILAN_KEYS
    assert m["version"] == case["version"]
    assert m["policy"] == int(case["policy"], 16)
    assert m["vmpl"] == case["vmpl"]
    assert m["signing_key"] == case["signing_key"].lower() == case["endorsement_key"]
    assert m["measurement"] == case["measurement"]
    assert m["product"] == "milan"
    assert (m["tcb_boot_loader"], m["tcb_tee"], m["tcb_snp"], m["tcb_microcode"]) == (
        raw_tcb[0], raw_tcb[1], raw_tcb[6], raw_tcb[7],
    )  # fmt: skip
    assert dict(quote.details) == {
        "chip_id": case["chip_id"],
        "reported_tcb": case["reported_tcb"],
        "platform_info": report_of(case)[0x40:0x48].hex(),
    }


def test_debug_guest_verifies_and_reports_debug() -> None:
    quote = verify_case(case_for(DEBUG_REPORT))
    assert quote.debug is True
    assert quote.measurements["policy"] == 0xB0000


def test_measurement_values_have_the_promised_types() -> None:
    m = verify_case(case_for(TRUSTEE_REPORT)).measurements
    hex_keys = {"measurement", "host_data", "family_id", "image_id", "id_key_digest"}
    assert all(isinstance(m[k], str) for k in hex_keys | {"signing_key", "product"})
    assert all(isinstance(m[k], int) for k in MILAN_KEYS - hex_keys - {"signing_key", "product"})
    assert m["id_key_digest"] == SnpReport.from_bytes(read(TRUSTEE_REPORT)).id_key_digest.hex()
    assert (m["family_id"], m["image_id"], m["guest_svn"]) == (
        "01" + "00" * 15,
        "02" + "00" * 15,
        4,
    )


# ---------------------------------------------------------------- time


@pytest.mark.parametrize(
    "now", ["2024-12-10 22:14:21+00:00", "2025-06-01 00:00:00+00:00", "2025-12-10 22:14:21+00:00"]
)
def test_vlek_verifies_inside_its_validity_bounds_included(now: str) -> None:
    assert verify_case(case_for(VLEK_REPORT), now=utc(now)).measurements["signing_key"] == "vlek"


@pytest.mark.parametrize(
    "now", [utc("2024-12-10 22:14:21+00:00") - SECOND, utc("2025-12-10 22:14:21+00:00") + SECOND]
)
def test_vlek_outside_its_validity_is_refused(now: datetime) -> None:
    with pytest.raises(CollateralError, match=r"CN=SEV-VLEK,.*is not valid at"):
        verify_case(case_for(VLEK_REPORT), now=now)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_endorsement_expired_or_not_yet_valid_is_refused(case: dict[str, Any]) -> None:
    start, end = (utc(t) for t in case["cert_valid"])
    for now in (start - SECOND, end + SECOND, datetime(2019, 1, 1, tzinfo=UTC)):
        with pytest.raises(CollateralError, match="is not valid at"):
            verify_case(case, now=now)


@pytest.mark.parametrize("now", ["2020-10-22 17:23:04+00:00", "2045-10-22 17:23:06+00:00"])
def test_pinned_roots_outside_their_validity_are_refused(now: str) -> None:
    chain = pinned_chain(Product.MILAN, EndorsementKind.VCEK)
    with pytest.raises(CollateralError, match="CN=ARK-Milan"):
        check_validity((chain.ark, chain.intermediate), now=utc(now))


def test_pinned_intermediate_outside_its_validity_is_refused() -> None:
    chain = pinned_chain(Product.MILAN, EndorsementKind.VLEK)  # ASVK from 2022-11-16 22:45:24
    check_validity((chain.ark,), now=utc("2022-11-16 22:45:23+00:00"))
    with pytest.raises(CollateralError, match="CN=SEV-VLEK-Milan"):
        check_validity((chain.ark, chain.intermediate), now=utc("2022-11-16 22:45:23+00:00"))


def test_naive_time_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_case(case_for(VIRTEE_REPORT), now=datetime(2025, 1, 1))


def test_other_timezones_are_compared_as_instants() -> None:
    vlek = case_for(VLEK_REPORT)
    tz = datetime(2025, 12, 10, 22, 14, 21, tzinfo=UTC).astimezone(timezone(timedelta(hours=5)))
    assert verify_case(vlek, now=tz).debug is False
    with pytest.raises(CollateralError):
        verify_case(vlek, now=tz + SECOND)


# ---------------------------------------------------------------- endorsements mapping


def test_no_endorsement_is_missing_collateral() -> None:
    with pytest.raises(CollateralError, match="no SEV-SNP endorsement certificate"):
        verify_case(case_for(VIRTEE_REPORT), endorsements={})


@pytest.mark.parametrize(
    "names", [("vcek", "vlek"), ("ask",), ("VCEK",), ("vcek", "ark"), ("cert_chain",)]
)
def test_endorsements_other_than_one_vcek_or_vlek_are_refused(names: tuple[str, ...]) -> None:
    der = read(case_for(VIRTEE_REPORT)["endorsement"])
    with pytest.raises(EvidenceFormatError, match="exactly one of 'vcek' or 'vlek'"):
        verify_case(case_for(VIRTEE_REPORT), endorsements=dict.fromkeys(names, der))


def test_vcek_presented_as_vlek_is_refused() -> None:
    case = case_for(VIRTEE_REPORT)
    with pytest.raises(EvidenceSignatureError, match="VLEK signature by AMD does not verify"):
        verify_case(case, endorsements={"vlek": read(case["endorsement"])})


def test_vlek_presented_as_vcek_is_refused() -> None:
    case = case_for(VLEK_REPORT)
    with pytest.raises(EvidenceSignatureError, match="VCEK signature by AMD does not verify"):
        verify_case(case, endorsements={"vcek": read(case["endorsement"])})


# ---------------------------------------------------------------- chain and keys


def test_milan_vcek_does_not_chain_to_the_genoa_roots() -> None:
    vcek = load_certificate(read(case_for(VIRTEE_REPORT)["endorsement"]))
    check_chain(vcek, pinned_chain(Product.MILAN, EndorsementKind.VCEK))
    with pytest.raises(EvidenceSignatureError, match="pinned genoa chain"):
        check_chain(vcek, pinned_chain(Product.GENOA, EndorsementKind.VCEK))


def test_turin_vcek_chains_only_to_the_turin_roots() -> None:
    vcek = load_certificate(read(TURIN_VCEK))
    check_chain(vcek, pinned_chain(Product.TURIN, EndorsementKind.VCEK))
    with pytest.raises(EvidenceSignatureError):
        check_chain(vcek, pinned_chain(Product.MILAN, EndorsementKind.VCEK))


def test_a_chain_whose_ark_is_not_self_signed_is_refused() -> None:
    milan = pinned_chain(Product.MILAN, EndorsementKind.VCEK)
    genoa = pinned_chain(Product.GENOA, EndorsementKind.VCEK)
    mixed = dataclasses.replace(milan, ark=genoa.ark)
    vcek = load_certificate(read(case_for(VIRTEE_REPORT)["endorsement"]))
    mixed_ark = dataclasses.replace(mixed, ark=milan.intermediate)  # an ASK posing as the ARK
    with pytest.raises(EvidenceSignatureError, match="ARK's self-signature"):
        check_chain(vcek, mixed_ark)
    with pytest.raises(EvidenceSignatureError, match="ASK/ASVK signature by the ARK"):
        check_chain(vcek, mixed)


@pytest.mark.parametrize(
    ("report", "vcek_of"),
    [
        (VIRTEE_REPORT, TRUSTEE_REPORT),
        (TRUSTEE_REPORT, VIRTEE_REPORT),
        (DEBUG_REPORT, VIRTEE_REPORT),
    ],
)
def test_vcek_of_another_chip_is_refused(report: str, vcek_of: str) -> None:
    other = case_for(vcek_of)
    with pytest.raises(EvidenceSignatureError, match="report signature does not verify"):
        verify_case(case_for(report), endorsements=endorsements_of(other))


def test_genuine_turin_vcek_for_a_milan_report_is_refused() -> None:
    with pytest.raises(EvidenceSignatureError, match="report signature does not verify"):
        verify_case(case_for(VIRTEE_REPORT), endorsements={"vcek": read(TURIN_VCEK)})


def test_report_claiming_another_signing_key_kind_is_refused() -> None:
    report = SnpReport.from_bytes(read(VIRTEE_REPORT))
    check_signing_key(report, EndorsementKind.VCEK)
    with pytest.raises(EvidenceSignatureError, match="signed by VCEK, the endorsement is a VLEK"):
        check_signing_key(report, EndorsementKind.VLEK)
    unsigned = dataclasses.replace(report, signing_key=SigningKey.NONE)
    with pytest.raises(EvidenceSignatureError, match="signed by NONE"):
        check_signing_key(unsigned, EndorsementKind.VCEK)


def test_vcek_report_with_masked_chip_key_is_refused() -> None:
    report = dataclasses.replace(SnpReport.from_bytes(read(VIRTEE_REPORT)), mask_chip_key=True)
    with pytest.raises(EvidenceSignatureError, match="MASK_CHIP_KEY"):
        check_signing_key(report, EndorsementKind.VCEK)
    vlek = dataclasses.replace(SnpReport.from_bytes(read(VLEK_REPORT)), mask_chip_key=True)
    check_signing_key(vlek, EndorsementKind.VLEK)  # a VLEK still signs with the chip key masked


def test_report_with_signing_key_field_flipped_to_vlek_is_refused_end_to_end() -> None:
    data = bytearray(read(VIRTEE_REPORT))
    data[0x48] |= 1 << 2
    with pytest.raises(EvidenceSignatureError, match="signed by VLEK"):
        verify_case(case_for(VIRTEE_REPORT), quote=bytes(data))


def test_report_signature_needs_a_p384_key() -> None:
    report = SnpReport.from_bytes(read(VIRTEE_REPORT))
    ark = pinned_chain(Product.MILAN, EndorsementKind.VCEK).ark  # RSA-4096, not P-384
    with pytest.raises(EvidenceSignatureError, match="report signature does not verify"):
        check_report_signature(report, ark)


def test_malleated_signature_bytes_are_checked_not_trusted() -> None:
    # R with its unused top bytes set is refused at parsing (an unsigned byte changed).
    data = bytearray(read(VIRTEE_REPORT))
    data[0x2A0 + 71] = 0x01
    with pytest.raises(EvidenceFormatError, match=r"top of SIGNATURE\.R"):
        verify_case(case_for(VIRTEE_REPORT), quote=bytes(data))


# ---------------------------------------------------------------- chip id and TCB


def test_chip_id_must_be_the_vcek_hwid() -> None:
    chip = bytes(range(64))
    check_chip_id(chip, chip, Product.MILAN)
    with pytest.raises(EvidenceSignatureError, match="CHIP_ID is not the VCEK's hwID"):
        check_chip_id(chip, bytes(range(1, 65)), Product.MILAN)


def test_masked_chip_id_is_not_compared() -> None:
    check_chip_id(bytes(64), bytes(range(64)), Product.MILAN)


def test_turin_compares_the_first_eight_bytes_of_chip_id() -> None:
    hw_id = bytes.fromhex("1e550a8ee5cf9f4d")
    check_chip_id(hw_id + bytes(56), hw_id, Product.TURIN)
    with pytest.raises(EvidenceSignatureError, match="turin compares 8 bytes"):
        check_chip_id(bytes(8) + hw_id + bytes(48), hw_id, Product.TURIN)


def test_reported_tcb_must_equal_the_certified_tcb() -> None:
    certified = TcbComponents(boot_loader=3, tee=0, snp=8, microcode=115)
    check_reported_tcb(certified, certified)
    for field in ("boot_loader", "tee", "snp", "microcode"):
        other = dataclasses.replace(certified, **{field: getattr(certified, field) + 1})
        with pytest.raises(EvidenceSignatureError, match="REPORTED_TCB differs"):
            check_reported_tcb(other, certified)
    with pytest.raises(EvidenceSignatureError):
        check_reported_tcb(dataclasses.replace(certified, fmc=0), certified)


def test_turin_measurements_include_fmc() -> None:
    report = SnpReport.from_bytes(read(VIRTEE_REPORT))
    m = snp_measurements(report, Product.TURIN, EndorsementKind.VCEK)
    assert set(m) == MILAN_KEYS | {"tcb_fmc"}
    raw = report.reported_tcb
    assert (m["tcb_fmc"], m["tcb_boot_loader"], m["tcb_tee"], m["tcb_snp"]) == tuple(raw[:4])
    assert m["product"] == "turin"
