"""SGX and TDX quotes against the recorded vectors: outcomes, framing, mutations."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from modellease._hazmat import certificate_der, load_pem_chain
from modellease.attestation import DirectoryCollateral, Evidence, TeeKind
from modellease.attestation.backends import dcap
from modellease.attestation.backends.dcap import (
    QuoteFrame,
    check_pck_chain,
    pck_chain_of,
    pinned_intel_root,
    strip_padding,
    verify_dcap,
)
from modellease.errors import (
    AttestationError,
    CollateralError,
    DebugRefusedError,
    EvidenceFormatError,
    EvidenceSignatureError,
    TcbRejectedError,
)
from tests.unit.attestation.support import (
    EXPECTED,
    VECTORS,
    at,
    case,
    collateral,
    dcap_evidence,
    quote,
    raw_quote,
)

PASSING = [c for c in EXPECTED if c["result"] == "ok"]
FAILING = [c for c in EXPECTED if c["result"] == "error"]
ERRORS = {
    "No matching TCB level found": TcbRejectedError,
    "Debug mode is enabled": DebugRefusedError,
    "TCBInfo expired": CollateralError,
    "Failed to verify certificate chain": CollateralError,  # the PCK CRL had expired
}


def label(c: dict[str, Any]) -> str:
    return f"{c['quote'].split('/')[1]}@{c['now_utc'][:10]}"


@pytest.mark.parametrize("c", PASSING, ids=label)
def test_passing_vectors_verify_with_expected_status_and_measurements(c: dict[str, Any]) -> None:
    verified = verify_dcap(dcap_evidence(c), now=at(c), accept_evidence_collateral=True)
    assert verified.tcb_status == c["tcb_status"]
    assert list(verified.advisory_ids) == c["advisory_ids"]
    assert verified.report_data.hex() == c["report_data"]
    assert verified.measurements["fmspc"] == c["fmspc"]
    assert verified.debug is False
    assert verified.insecure is False
    if c["tee"] == "SGX":
        assert verified.measurements["mrenclave"] == c["mr_enclave"]
        assert verified.measurements["mrsigner"] == c["mr_signer"]
        assert verified.measurements["attributes"] == c["attributes"]
        assert verified.measurements["isv_prod_id"] == 0
        assert verified.measurements["isv_svn"] == 0
    else:
        for name in ("mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "td_attributes", "mr_seam"):
            key = "mrtd" if name == "mr_td" else name
            assert verified.measurements[key] == c[name], name


@pytest.mark.parametrize("c", FAILING, ids=label)
def test_failing_vectors_fail_with_their_specific_error(c: dict[str, Any]) -> None:
    expected = next(e for text, e in ERRORS.items() if text in c["error"])
    with pytest.raises(expected) as caught:
        verify_dcap(dcap_evidence(c), now=at(c), accept_evidence_collateral=True)
    assert "DCAP verification failed" in str(caught.value)


def test_time_before_collateral_issue_is_refused() -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    early = at(c).replace(year=2025, month=6, day=1)
    with pytest.raises(CollateralError, match=r"in the future|expired|Failed"):
        verify_dcap(dcap_evidence(c), now=early, accept_evidence_collateral=True)


def test_collateral_from_a_directory_source(tmp_path: Path) -> None:
    c = case("tdx-dcap/phala_tdx_quote", result="ok")
    (tmp_path / "tdx").mkdir()
    (tmp_path / "tdx" / "B0C06F000000.json").write_bytes(collateral(c["collateral"]))
    verified = verify_dcap(
        dcap_evidence(c, with_collateral=False), now=at(c), collateral=DirectoryCollateral(tmp_path)
    )
    assert verified.tcb_status == "UpToDate"
    with pytest.raises(CollateralError, match="no tdx collateral for FMSPC B0C06F000000"):
        verify_dcap(
            dcap_evidence(c, with_collateral=False),
            now=at(c),
            collateral=DirectoryCollateral(tmp_path / "empty"),
        )


def test_missing_or_malformed_collateral() -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    with pytest.raises(CollateralError, match="no DCAP collateral"):
        verify_dcap(dcap_evidence(c, with_collateral=False), now=at(c))
    with pytest.raises(CollateralError, match="brings its own DCAP collateral"):
        verify_dcap(dcap_evidence(c), now=at(c))
    bad = Evidence(
        tee=TeeKind.SGX,
        quote=quote(c["quote"]),
        claims=b"{}",
        endorsements={"dcap_collateral": b'{"not": "collateral"}'},
    )
    with pytest.raises(CollateralError, match="malformed DCAP collateral"):
        verify_dcap(bad, now=at(c), accept_evidence_collateral=True)


def test_collateral_of_another_platform_is_refused() -> None:
    sgx = case("sgx-dcap/phala_sgx_quote", result="ok")
    tdx = case("tdx-dcap/phala_tdx_quote", result="ok")
    mixed = Evidence(
        tee=TeeKind.SGX,
        quote=quote(sgx["quote"]),
        claims=b"{}",
        endorsements={"dcap_collateral": collateral(tdx["collateral"])},
    )
    with pytest.raises(AttestationError):
        verify_dcap(mixed, now=at(sgx), accept_evidence_collateral=True)


def test_padding_and_appended_bytes_are_refused_though_dcap_qvl_ignores_them() -> None:
    c = case("tdx-dcap/phala_tdx_quote", result="ok")
    padded = Evidence(
        tee=TeeKind.TDX,
        quote=raw_quote(c["quote"]),
        claims=b"{}",
        endorsements={"dcap_collateral": collateral(c["collateral"])},
    )
    assert len(padded.quote) == 5006
    with pytest.raises(EvidenceFormatError, match="bytes after the end of the quote"):
        verify_dcap(padded, now=at(c), accept_evidence_collateral=True)
    appended = raw_quote("tdx-dcap/gotdxguest_tdx_prod_quote_SPR_E4.dat")
    with pytest.raises(EvidenceFormatError, match="non-zero bytes after the quote"):
        strip_padding(appended)
    assert strip_padding(raw_quote(c["quote"])) == quote(c["quote"])


def test_quote_sent_as_the_other_tee_kind_is_refused() -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    ev = dcap_evidence(c)
    wrong = Evidence(
        tee=TeeKind.TDX, quote=ev.quote, claims=ev.claims, endorsements=ev.endorsements
    )
    with pytest.raises(EvidenceFormatError, match="a SGX quote sent as tdx"):
        verify_dcap(wrong, now=at(c), accept_evidence_collateral=True)


def test_quote_framing() -> None:
    sgx = QuoteFrame.from_bytes(quote("sgx-dcap/phala_sgx_quote"))
    assert (sgx.version, sgx.body_offset, sgx.body_size) == (3, 48, 384)
    assert sgx.report_data_offset == 368
    v4 = QuoteFrame.from_bytes(quote("tdx-dcap/phala_tdx_quote"))
    assert (v4.version, v4.report_data_offset, v4.length) == (4, 568, 4936)
    v5 = QuoteFrame.from_bytes(quote("tdx-dcap/gotdxguest_quote_v5_sample.dat"))
    assert (v5.version, v5.body_offset, v5.body_size, v5.report_data_offset) == (5, 54, 648, 574)
    assert QuoteFrame.from_bytes(quote("sgx-dcap/trustee_occlum_quote.dat")).version == 3


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ((0, b"\x02\x00"), "unsupported quote version 2"),
        ((4, b"\x42\x00\x00\x00"), "unknown TEE type 0x42"),
        ((48, b"\x09\x00"), "unsupported v5 body type 9"),
    ],
)
def test_quote_framing_refuses_unknown_layouts(patch: tuple[int, bytes], message: str) -> None:
    data = bytearray(quote("tdx-dcap/gotdxguest_quote_v5_sample.dat"))
    offset, value = patch
    data[offset : offset + len(value)] = value
    with pytest.raises(EvidenceFormatError, match=message):
        QuoteFrame.from_bytes(bytes(data))


def test_oversized_signature_data_is_refused() -> None:
    data = bytearray(quote("sgx-dcap/phala_sgx_quote"))
    data[432:436] = (1 << 20).to_bytes(4, "little")
    with pytest.raises(EvidenceFormatError, match="signature data of 1048576 bytes"):
        QuoteFrame.from_bytes(bytes(data))


def test_pinned_root_matches_the_recorded_intel_root() -> None:
    assert pinned_intel_root() == (VECTORS / "sgx-dcap/phala_Intel_SGX_RootCA.der").read_bytes()


def test_tampered_pinned_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dcap, "INTEL_ROOT_SHA256", "00" * 32)
    with pytest.raises(RuntimeError, match="does not match its pinned SHA-256"):
        pinned_intel_root()


# ------------------------------------------------------------------ exhaustive mutation
MUTATION_CASES = [
    case("sgx-dcap/phala_sgx_quote", result="ok"),
    case("tdx-dcap/phala_tdx_quote", result="ok"),
    case("tdx-dcap/gotdxguest_quote_v5_sample.dat", result="ok"),
]
TYPED = (
    EvidenceFormatError,
    EvidenceSignatureError,
    CollateralError,
    TcbRejectedError,
    DebugRefusedError,
)


def _must_refuse(c: dict[str, Any], quote_bytes: bytes, coll: bytes) -> None:
    ev = Evidence(
        tee=TeeKind.SGX if c["tee"] == "SGX" else TeeKind.TDX,
        quote=quote_bytes,
        claims=b"{}",
        endorsements={"dcap_collateral": coll},
    )
    with pytest.raises(TYPED):
        verify_dcap(ev, now=at(c), accept_evidence_collateral=True)


@pytest.mark.parametrize("c", MUTATION_CASES, ids=label)
def test_every_truncation_and_byte_flip_of_the_quote_is_refused(c: dict[str, Any]) -> None:
    q, coll = quote(c["quote"]), collateral(c["collateral"])
    for length in range(len(q)):
        _must_refuse(c, q[:length], coll)
    for offset in range(len(q)):
        mutated = bytearray(q)
        mutated[offset] ^= 0x01
        _must_refuse(c, bytes(mutated), coll)


def test_collateral_mutations_are_refused() -> None:
    """Flip every byte of the signed collateral parts: TCB info, QE identity, their
    signatures and both CRLs (the PEM issuer chains are checked by dcap-qvl to the root)."""
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    q = quote(c["quote"])
    original = json.loads(collateral(c["collateral"]))
    for field in ("tcb_info", "qe_identity"):
        text = original[field]
        for i in range(len(text)):
            mutated = dict(original)
            mutated[field] = text[:i] + chr(ord(text[i]) ^ 0x01) + text[i + 1 :]
            _must_refuse(c, q, json.dumps(mutated).encode())
    for field in ("tcb_info_signature", "qe_identity_signature", "pck_crl", "root_ca_crl"):
        raw = bytes.fromhex(original[field])
        for i in range(len(raw)):
            flipped = bytearray(raw)
            flipped[i] ^= 0x01
            mutated = dict(original)
            mutated[field] = flipped.hex()
            _must_refuse(c, q, json.dumps(mutated).encode())


def _pck_chain() -> tuple[bytes, QuoteFrame]:
    q = quote("sgx-dcap/phala_sgx_quote")
    return q, QuoteFrame.from_bytes(q)


def test_pck_chain_must_be_canonical_pem_ending_in_the_pinned_root() -> None:
    q, frame = _pck_chain()
    chain = pck_chain_of(q, frame)
    check_pck_chain(chain, pinned_intel_root())
    with pytest.raises(EvidenceFormatError, match="not PEM"):
        check_pck_chain(b"garbage", pinned_intel_root())
    with pytest.raises(EvidenceFormatError, match="canonical PEM"):
        check_pck_chain(chain.replace(b"\n", b"\r\n", 3), pinned_intel_root())
    with pytest.raises(EvidenceSignatureError, match="does not end in the pinned root"):
        check_pck_chain(chain, b"another root")


def test_signature_data_layout_is_enforced() -> None:
    q, frame = _pck_chain()
    start = frame.body_offset + frame.body_size + 4
    auth = start + 128 + 384 + 64
    auth_len = int.from_bytes(q[auth : auth + 2], "little")
    cert_type = auth + 2 + auth_len
    bad_type = q[:cert_type] + (4).to_bytes(2, "little") + q[cert_type + 2 :]
    with pytest.raises(EvidenceFormatError, match="certification data type 4, expected 5"):
        pck_chain_of(bad_type, frame)
    short = (
        q[:cert_type]
        + q[cert_type : cert_type + 2]
        + (1 << 16).to_bytes(4, "little")
        + q[cert_type + 6 :]
    )
    with pytest.raises(EvidenceFormatError, match="truncated in the PCK certificate chain"):
        pck_chain_of(short, frame)
    size = int.from_bytes(q[cert_type + 2 : cert_type + 6], "little")
    shorter = q[: cert_type + 2] + (size - 1).to_bytes(4, "little") + q[cert_type + 6 :]
    with pytest.raises(EvidenceFormatError, match="bytes after the PCK certificate chain"):
        pck_chain_of(shorter, frame)


def test_v4_qe_report_data_size_must_match() -> None:
    q = quote("tdx-dcap/phala_tdx_quote")
    frame = QuoteFrame.from_bytes(q)
    at_size = frame.body_offset + frame.body_size + 4 + 128 + 2
    size = int.from_bytes(q[at_size : at_size + 4], "little")
    bad = q[:at_size] + (size + 1).to_bytes(4, "little") + q[at_size + 4 :]
    with pytest.raises(EvidenceFormatError, match="QE report data size disagrees"):
        pck_chain_of(bad, frame)


def test_appraisal_time_must_be_aware() -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_dcap(
            dcap_evidence(c), now=at(c).replace(tzinfo=None), accept_evidence_collateral=True
        )


def test_directory_collateral_limits(tmp_path: Path) -> None:
    source = DirectoryCollateral(tmp_path)
    with pytest.raises(CollateralError, match="malformed collateral key"):
        source.dcap_collateral("sgx", "../../etc/passwd")
    with pytest.raises(CollateralError, match="malformed collateral key"):
        source.dcap_collateral("..", "00A067110000")
    (tmp_path / "sgx").mkdir()
    (tmp_path / "sgx" / "00A067110000.json").write_bytes(b" " * (512 * 1024 + 1))
    with pytest.raises(CollateralError, match="larger than"):
        source.dcap_collateral("sgx", "00A067110000")
    (tmp_path / "sgx" / "00606A000000.json").mkdir()
    with pytest.raises(CollateralError, match="cannot read"):
        source.dcap_collateral("sgx", "00606A000000")


def test_attacker_text_in_collateral_cannot_choose_the_error_type() -> None:
    """dcap-qvl quotes bad collateral in its message; words like "debug" there change nothing."""
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    doc = json.loads(collateral(c["collateral"]))
    for word in ("debug", "Revoked", "expired"):
        tampered = dict(doc)
        tampered["tcb_info"] = doc["tcb_info"].replace('"version":3', f'"version":"{word}"', 1)
        with pytest.raises(EvidenceSignatureError):
            _must_refuse_as(c, json.dumps(tampered).encode())


def _must_refuse_as(c: dict[str, Any], coll: bytes) -> None:
    ev = Evidence(
        tee=TeeKind.SGX,
        quote=quote(c["quote"]),
        claims=b"{}",
        endorsements={"dcap_collateral": coll},
    )
    verify_dcap(ev, now=at(c), accept_evidence_collateral=True)


def test_tcb_evaluation_data_number_is_reported() -> None:
    c = case("sgx-dcap/phala_sgx_quote", result="ok")
    verified = verify_dcap(dcap_evidence(c), now=at(c), accept_evidence_collateral=True)
    assert verified.tcb_evaluation_data_number == 17


def test_certificate_with_an_unknown_x509_version_is_malformed() -> None:
    q, frame = _pck_chain()
    chain = pck_chain_of(q, frame)
    first = load_pem_chain(chain.removesuffix(b"\x00"))[0]
    der = bytearray(certificate_der(first))
    der[12] = 0x05  # the version INTEGER inside [0] EXPLICIT: "v6" does not exist
    pem = (
        b"-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(bytes(der))
        + b"-----END CERTIFICATE-----\n"
    )
    with pytest.raises(EvidenceFormatError, match="not PEM"):
        check_pck_chain(pem, pinned_intel_root())


@pytest.mark.parametrize("tcb_info", ['{"version":3}', '{"tcbEvaluationDataNumber":true}'])
def test_tcb_info_without_an_evaluation_number_is_refused(tcb_info: str) -> None:
    with pytest.raises(CollateralError, match="no tcbEvaluationDataNumber"):
        dcap._evaluation_data_number(tcb_info)
