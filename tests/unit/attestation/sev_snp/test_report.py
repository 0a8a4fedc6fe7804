"""ATTESTATION_REPORT parsing: recorded reports read as recorded, and every rule refuses."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from modellease.attestation.backends.sev_snp import (
    REPORT_SIZE,
    SIGNED_SIZE,
    Product,
    ReportVersion,
    SignatureAlgorithm,
    SigningKey,
    SnpReport,
    TcbComponents,
)
from modellease.errors import EvidenceFormatError
from tests.unit.attestation.sev_snp.snp_vectors import (
    CASE_IDS,
    CASES,
    DEBUG_REPORT,
    TRUSTEE_REPORT,
    VLEK_REPORT,
    case_for,
    read,
    report_of,
)

R_OFFSET, S_OFFSET, SIGNATURE_TAIL = 0x2A0, 0x2E8, 0x330


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def refused_at(data: bytes, offset: int, match: str) -> None:
    with pytest.raises(EvidenceFormatError, match=match) as info:
        SnpReport.from_bytes(data)
    assert info.value.offset == offset


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_recorded_reports_parse_to_their_recorded_fields(case: dict[str, Any]) -> None:
    data = report_of(case)
    report = SnpReport.from_bytes(data)
    assert report.version == case["version"]
    assert report.policy == int(case["policy"], 16)
    assert report.debug_allowed is case["debug_allowed"]
    assert report.vmpl == case["vmpl"]
    assert report.signing_key.name == case["signing_key"]
    assert report.report_data.hex() == case["report_data"]
    assert report.measurement.hex() == case["measurement"]
    assert report.reported_tcb.hex() == case["reported_tcb"]
    assert report.chip_id.hex() == case["chip_id"]
    assert report.signature_algo is SignatureAlgorithm.ECDSA_P384_SHA384
    assert report.signed_bytes == data[:SIGNED_SIZE]
    assert report.signature_r == int.from_bytes(data[R_OFFSET : R_OFFSET + 48], "little")
    assert report.signature_s == int.from_bytes(data[S_OFFSET : S_OFFSET + 48], "little")


def test_debug_report_fields() -> None:
    report = SnpReport.from_bytes(read(DEBUG_REPORT))
    assert report.version is ReportVersion.V2
    assert report.debug_allowed
    assert report.smt_allowed
    assert not report.migrate_ma_allowed
    assert not report.single_socket_required
    assert (report.current_major, report.current_minor, report.current_build) == (1, 49, 3)
    assert (report.committed_major, report.committed_minor, report.committed_build) == (1, 49, 3)
    assert report.current_tcb.hex() == "0200000000000544"
    assert report.committed_tcb.hex() == "0200000000000544"
    assert report.launch_tcb.hex() == "0200000000000544"
    assert report.platform_info == 1
    assert report.signing_key is SigningKey.VCEK
    assert not report.author_key_en
    assert not report.mask_chip_key
    assert report.reported_tcb_components(Product.MILAN) == TcbComponents(
        boot_loader=2, tee=0, snp=5, microcode=0x44
    )


def test_version_2_has_no_cpuid_or_mitigation_fields() -> None:
    report = SnpReport.from_bytes(read(TRUSTEE_REPORT))
    assert (report.cpuid_fam_id, report.cpuid_mod_id, report.cpuid_step) == (None, None, None)
    assert (report.launch_mit_vector, report.current_mit_vector) == (None, None)
    assert report.guest_svn == 4
    assert report.family_id.hex() == "01" + "00" * 15
    assert report.image_id.hex() == "02" + "00" * 15


def test_version_3_vlek_report_has_cpuid_of_milan() -> None:
    report = SnpReport.from_bytes(read(VLEK_REPORT))
    assert report.version is ReportVersion.V3
    assert report.signing_key is SigningKey.VLEK
    assert (report.cpuid_fam_id, report.cpuid_mod_id, report.cpuid_step) == (0x19, 0x01, 0x01)
    assert report.launch_mit_vector is None
    assert report.host_data == bytes(32)
    assert report.id_key_digest == bytes(48)
    assert report.author_key_digest == bytes(48)
    assert len(report.report_id) == len(report.report_id_ma) == 32


def test_version_5_layout_adds_mitigation_vectors() -> None:
    data = patched(read(VLEK_REPORT), 0x000, (5).to_bytes(4, "little"))
    data = patched(data, 0x1F8, (0x0102).to_bytes(8, "little") + (0x0304).to_bytes(8, "little"))
    report = SnpReport.from_bytes(data)
    assert report.version is ReportVersion.V5
    assert report.cpuid_fam_id == 0x19
    assert (report.launch_mit_vector, report.current_mit_vector) == (0x0102, 0x0304)


@pytest.mark.parametrize("length", [0, 1, 0x2A0, REPORT_SIZE - 1, REPORT_SIZE + 1, 4096])
def test_any_length_but_1184_is_refused(length: int) -> None:
    data = (read(DEBUG_REPORT) * 4)[:length]
    refused_at(data, min(length, REPORT_SIZE), "an SNP report is 1184 bytes")


def test_a_bytearray_is_a_caller_bug() -> None:
    with pytest.raises(TypeError, match="bytes"):
        SnpReport.from_bytes(bytearray(read(DEBUG_REPORT)))  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [0, 1, 4, 6, 0x100, 0xFFFFFFFF])
def test_unknown_versions_are_refused(version: int) -> None:
    data = patched(read(DEBUG_REPORT), 0x000, version.to_bytes(4, "little"))
    refused_at(data, 0x000, f"VERSION {version} is not supported")


@pytest.mark.parametrize("algo", [0, 2, 0x101])
def test_signature_algorithms_other_than_ecdsa_p384_are_refused(algo: int) -> None:
    data = patched(read(DEBUG_REPORT), 0x034, algo.to_bytes(4, "little"))
    refused_at(data, 0x034, "SIGNATURE_ALGO")


@pytest.mark.parametrize("kind", [2, 3, 4, 5, 6])
def test_reserved_signing_key_kinds_are_refused(kind: int) -> None:
    data = patched(read(DEBUG_REPORT), 0x048, (kind << 2).to_bytes(4, "little"))
    refused_at(data, 0x048, "SIGNING_KEY")


@pytest.mark.parametrize(("bits", "kind"), [(0b11100, SigningKey.NONE), (0b00111, SigningKey.VLEK)])
def test_signer_info_bits(bits: int, kind: SigningKey) -> None:
    report = SnpReport.from_bytes(patched(read(DEBUG_REPORT), 0x048, bits.to_bytes(4, "little")))
    assert report.signing_key is kind
    assert report.author_key_en is bool(bits & 1)
    assert report.mask_chip_key is bool(bits & 2)


def test_policy_without_reserved_bit_17_is_refused() -> None:
    data = read(DEBUG_REPORT)
    policy = int.from_bytes(data[0x008:0x010], "little") & ~(1 << 17)
    refused_at(patched(data, 0x008, policy.to_bytes(8, "little")), 0x008, "bit 17")


@pytest.mark.parametrize(
    ("bit", "name"),
    [
        (16, "smt_allowed"),
        (18, "migrate_ma_allowed"),
        (19, "debug_allowed"),
        (20, "single_socket_required"),
    ],
)
def test_policy_flags(bit: int, name: str) -> None:
    base = SnpReport.from_bytes(read(TRUSTEE_REPORT))  # policy 0x3001F: SMT on, the rest off
    flipped = base.policy ^ (1 << bit)
    other = SnpReport.from_bytes(
        patched(read(TRUSTEE_REPORT), 0x008, flipped.to_bytes(8, "little"))
    )
    assert getattr(other, name) is not getattr(base, name)


@pytest.mark.parametrize(
    ("offset", "what"),
    [(R_OFFSET + 48 + i, "SIGNATURE.R") for i in range(24)]
    + [(S_OFFSET + 48 + i, "SIGNATURE.S") for i in range(24)],
)
def test_nonzero_top_bytes_of_r_and_s_are_refused(offset: int, what: str) -> None:
    data = read(DEBUG_REPORT)
    refused_at(patched(data, offset, bytes([data[offset] ^ 0x01])), offset, f"top of {what}")


@pytest.mark.parametrize("offset", [SIGNATURE_TAIL, 0x400, REPORT_SIZE - 1])
def test_nonzero_unused_signature_area_is_refused(offset: int) -> None:
    data = read(DEBUG_REPORT)
    refused_at(patched(data, offset, b"\x80"), offset, "rest of SIGNATURE")


def test_reports_are_frozen() -> None:
    report = SnpReport.from_bytes(read(DEBUG_REPORT))
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.vmpl = 3  # type: ignore[misc]


def test_expected_cases_cover_both_signing_keys() -> None:
    assert {case["signing_key"] for case in CASES} == {"VCEK", "VLEK"}
    assert case_for(VLEK_REPORT)["version"] == 3
