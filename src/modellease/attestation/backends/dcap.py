"""Intel SGX and TDX DCAP quotes: exact-length framing, then dcap-qvl, then our own reading.

Rules (Intel "SGX ECDSA Quote Library API" / "TDX DCAP Quoting Library API", quote
formats v3, v4 and v5):

* a quote must be exactly as long as its own length fields say; hardware pads quotes with
  zeros, and the attesters in this package strip that padding, so trailing bytes here mean
  tampering (dcap-qvl itself ignores them);
* the signature data must have exactly the layout of its version (QE report certification
  data, PCK certificate chain as cert-data type 5), and the PCK chain must be canonical PEM
  ending in the pinned Intel root: dcap-qvl ignores the embedded root and tolerates PEM
  whitespace changes, so without this some bytes of a quote would be covered by nothing;
* the quote's TEE type must match the evidence's TEE kind;
* dcap-qvl verifies the whole chain to the *pinned* Intel SGX Root CA we pass explicitly
  (``verify_with_root_ca``), the collateral's signatures and validity at ``now``, the QE
  identity, the TCB level, and refuses debug enclaves/TDs and revoked platforms;
* its failures are mapped to our typed errors (debug, TCB, collateral, signature);
* measurements come from dcap-qvl's verified report, and its report data must equal the
  bytes at the spec offset of the quote we framed (no parser differential).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from importlib import resources
from typing import Any

import dcap_qvl

from modellease._hazmat import certificate_der, certificate_pem, ct_equal, load_pem_chain
from modellease.attestation.collateral import CollateralSource
from modellease.attestation.evidence import Evidence, TeeKind
from modellease.attestation.verified import VerifiedQuote
from modellease.errors import (
    AttestationError,
    CollateralError,
    DebugRefusedError,
    EvidenceFormatError,
    EvidenceSignatureError,
    TcbRejectedError,
)

INTEL_ROOT_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
COLLATERAL_ENDORSEMENT = "dcap_collateral"

HEADER_SIZE = 48
SGX_REPORT_SIZE = 384
TD10_REPORT_SIZE = 584
V5_BODY_HEADER_SIZE = 6  # u16 body type + u32 body size
MAX_SIGNATURE_DATA = 32 * 1024  # ECDSA sig, keys, QE report, auth data and a PEM chain (~4 KiB)


class QuoteVersion(IntEnum):
    V3 = 3
    V4 = 4
    V5 = 5


class TeeType(IntEnum):
    SGX = 0x00000000
    TDX = 0x00000081


class V5BodyType(IntEnum):
    TD_REPORT_10 = 2
    TD_REPORT_15 = 3


_V5_BODY_SIZES = {V5BodyType.TD_REPORT_10: 584, V5BodyType.TD_REPORT_15: 648}


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteFrame:
    """Where the parts of a DCAP quote lie. Unverified: it only frames bytes."""

    version: QuoteVersion
    tee_type: TeeType
    body_offset: int
    body_size: int
    length: int  # header + body + signature data: the quote's true length

    @property
    def report_data_offset(self) -> int:
        # SGX REPORTBODY.REPORTDATA at 320; TDREPORT REPORTDATA at 520 (both 1.0 and 1.5)
        return self.body_offset + (320 if self.tee_type is TeeType.SGX else 520)

    @classmethod
    def from_bytes(cls, data: bytes) -> QuoteFrame:
        """Frame a quote, checking every length against what remains."""
        if len(data) < HEADER_SIZE:
            raise EvidenceFormatError("quote shorter than its 48-byte header", offset=len(data))
        version, _key_type, tee = struct.unpack_from("<HHI", data, 0)
        try:
            tee_type = TeeType(tee)
        except ValueError:
            raise EvidenceFormatError(f"unknown TEE type {tee:#x}", offset=4) from None
        if version == QuoteVersion.V3 and tee_type is TeeType.SGX:
            body_offset, body_size = HEADER_SIZE, SGX_REPORT_SIZE
        elif version == QuoteVersion.V4 and tee_type is TeeType.TDX:
            body_offset, body_size = HEADER_SIZE, TD10_REPORT_SIZE
        elif version == QuoteVersion.V5 and tee_type is TeeType.TDX:
            body_offset, body_size = cls._v5_body(data)
        else:
            raise EvidenceFormatError(
                f"unsupported quote version {version} for TEE type {tee:#x}", offset=0
            )
        sig_len_offset = body_offset + body_size
        _need(data, sig_len_offset + 4, "signature data length")
        (sig_len,) = struct.unpack_from("<I", data, sig_len_offset)
        if sig_len > MAX_SIGNATURE_DATA:
            raise EvidenceFormatError(f"signature data of {sig_len} bytes", offset=sig_len_offset)
        length = sig_len_offset + 4 + sig_len
        _need(data, length, "signature data")
        return cls(
            version=QuoteVersion(version),
            tee_type=tee_type,
            body_offset=body_offset,
            body_size=body_size,
            length=length,
        )

    @staticmethod
    def _v5_body(data: bytes) -> tuple[int, int]:
        _need(data, HEADER_SIZE + V5_BODY_HEADER_SIZE, "v5 body header")
        body_type, body_size = struct.unpack_from("<HI", data, HEADER_SIZE)
        expected = _V5_BODY_SIZES.get(body_type)
        if expected is None or body_size != expected:
            raise EvidenceFormatError(
                f"unsupported v5 body type {body_type} of {body_size} bytes", offset=HEADER_SIZE
            )
        return HEADER_SIZE + V5_BODY_HEADER_SIZE, body_size


def _need(data: bytes, end: int, what: str) -> None:
    if len(data) < end:
        raise EvidenceFormatError(f"quote truncated in its {what}", offset=len(data))


class CertDataType(IntEnum):
    PCK_CERT_CHAIN = 5
    QE_REPORT_CERT_DATA = 6


ECDSA_SIGNATURE_SIZE = 64
ATTESTATION_KEY_SIZE = 64
QE_REPORT_SIZE = 384
PCK_CHAIN_LENGTH = 3  # PCK leaf, PCK platform/processor CA, Intel SGX Root CA


class _Cursor:
    """Bounded reader over the signature data: every length is checked before slicing."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self._data, self.offset, self._end = data, start, end

    def take(self, size: int, what: str) -> bytes:
        if self.offset + size > self._end:
            raise EvidenceFormatError(f"signature data truncated in the {what}", offset=self.offset)
        chunk = self._data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "little")

    def cert_data_header(self, expected: CertDataType) -> int:
        at = self.offset
        kind = self.u16("certification data type")
        if kind != expected:
            raise EvidenceFormatError(
                f"certification data type {kind}, expected {expected}", offset=at
            )
        return self.u32("certification data size")


def pck_chain_of(quote: bytes, frame: QuoteFrame) -> bytes:
    """Walk the signature data of a framed quote; return the PCK chain's exact bytes."""
    start = frame.body_offset + frame.body_size + 4
    cursor = _Cursor(quote, start, frame.length)
    cursor.take(ECDSA_SIGNATURE_SIZE + ATTESTATION_KEY_SIZE, "signature and attestation key")
    if frame.version is not QuoteVersion.V3:  # v4/v5 wrap the QE report in type-6 data
        outer_size = cursor.cert_data_header(CertDataType.QE_REPORT_CERT_DATA)
        if cursor.offset + outer_size != frame.length:
            raise EvidenceFormatError(
                "QE report data size disagrees with the quote", offset=cursor.offset
            )
    cursor.take(QE_REPORT_SIZE + ECDSA_SIGNATURE_SIZE, "QE report and signature")
    cursor.take(cursor.u16("QE authentication data size"), "QE authentication data")
    chain_size = cursor.cert_data_header(CertDataType.PCK_CERT_CHAIN)
    chain = cursor.take(chain_size, "PCK certificate chain")
    if cursor.offset != frame.length:
        raise EvidenceFormatError("bytes after the PCK certificate chain", offset=cursor.offset)
    return chain


def check_pck_chain(chain: bytes, root_der: bytes) -> None:
    """The chain must be canonical PEM (one optional NUL after it) ending in the pinned root."""
    pem = chain.removesuffix(b"\x00")
    try:
        certificates = load_pem_chain(pem)
    except ValueError:
        raise EvidenceFormatError("the PCK certificate chain is not PEM") from None
    if b"".join(certificate_pem(c) for c in certificates) != pem:
        raise EvidenceFormatError("the PCK certificate chain is not in canonical PEM form")
    if len(certificates) != PCK_CHAIN_LENGTH or certificate_der(certificates[-1]) != root_der:
        raise EvidenceSignatureError("the PCK certificate chain does not end in the pinned root")


def strip_padding(quote: bytes) -> bytes:
    """Cut the zero padding hardware appends (attester side). Non-zero padding is refused."""
    frame = QuoteFrame.from_bytes(quote)
    if quote[frame.length :].strip(b"\x00"):
        raise EvidenceFormatError("non-zero bytes after the quote", offset=frame.length)
    return quote[: frame.length]


def pinned_intel_root() -> bytes:
    """The Intel SGX Root CA shipped with modellease, checked against its pinned SHA-256."""
    der = resources.files("modellease.attestation").joinpath("_roots/intel/intel_sgx_root_ca.der")
    data = der.read_bytes()
    if hashlib.sha256(data).hexdigest() != INTEL_ROOT_SHA256:
        raise RuntimeError("the shipped Intel SGX Root CA does not match its pinned SHA-256")
    return data


# dcap-qvl reports failures as ValueError text: "Verification failed: <reason>", then
# "Caused by" lines. Only dcap-qvl's own fixed reasons are matched, exactly: the cause lines
# can quote attacker-supplied collateral, so no substring of them may choose our error type.
_FIRST_LINE_ERRORS: dict[str, type[AttestationError]] = {
    "Debug mode is enabled": DebugRefusedError,
    "No matching TCB level found": TcbRejectedError,
    "TCB status is invalid: Revoked": TcbRejectedError,
    "TCBInfo expired": CollateralError,
    "TCBInfo issue date is in the future": CollateralError,
    "QE Identity expired": CollateralError,
    "QE Identity issue date is in the future": CollateralError,
}
# webpki's time errors inside "Failed to verify certificate chain" (numbers only: no text).
_TIME_CAUSE = re.compile(
    r"(CrlExpired|CertExpired|CertNotValidYet) \{ time: UnixTime\(\d+\), "
    r"(next_update|not_after|not_before): UnixTime\(\d+\) \}"
)
_PREFIX = "Verification failed: "


def _map_failure(message: str) -> AttestationError:
    lines = [line.strip(" |") for line in message.splitlines() if line.strip(" |")]
    first = lines[0] if lines else "unknown failure"
    error = _FIRST_LINE_ERRORS.get(first.removeprefix(_PREFIX), EvidenceSignatureError)
    if first == _PREFIX + "Failed to verify certificate chain" and _TIME_CAUSE.fullmatch(lines[-1]):
        error = CollateralError
    detail = f": {lines[-1]}" if error is CollateralError and len(lines) > 1 else ""
    return error(f"DCAP verification failed: {first}{detail}")


def _collateral(
    evidence: Evidence, fmspc: str, source: CollateralSource | None, *, from_evidence: bool
) -> Any:  # noqa: ANN401 - dcap-qvl's collateral object
    if source is not None:
        raw = source.dcap_collateral(evidence.tee.value, fmspc)
    elif from_evidence and COLLATERAL_ENDORSEMENT in evidence.endorsements:
        raw = evidence.endorsements[COLLATERAL_ENDORSEMENT]
    elif COLLATERAL_ENDORSEMENT in evidence.endorsements:
        raise CollateralError(
            "the evidence brings its own DCAP collateral, which lets the attester pick the "
            "freshest-looking set; give a collateral source or set accept_evidence_collateral"
        )
    else:
        raise CollateralError("no DCAP collateral: give a collateral source")
    try:
        return dcap_qvl.QuoteCollateralV3.from_json(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CollateralError(f"malformed DCAP collateral: {str(exc).splitlines()[0]}") from None


def verify_dcap(
    evidence: Evidence,
    *,
    now: datetime,
    collateral: CollateralSource | None = None,
    accept_evidence_collateral: bool = False,
) -> VerifiedQuote:
    """Verify an SGX or TDX quote at ``now`` and return what its signatures establish."""
    quote = evidence.quote
    # 1. Framing: exact length, supported version, and the TEE type the evidence claims.
    frame = QuoteFrame.from_bytes(quote)
    if frame.length != len(quote):
        raise EvidenceFormatError("bytes after the end of the quote", offset=frame.length)
    expected = TeeType.SGX if evidence.tee is TeeKind.SGX else TeeType.TDX
    if frame.tee_type is not expected:
        raise EvidenceFormatError(f"a {frame.tee_type.name} quote sent as {evidence.tee}", offset=4)
    root = pinned_intel_root()
    check_pck_chain(pck_chain_of(quote, frame), root)
    # 2. Collateral for the platform's FMSPC (from the source, else from the evidence).
    try:
        fmspc = dcap_qvl.parse_quote(quote).fmspc()
    except ValueError as exc:
        raise EvidenceFormatError(f"unreadable quote: {str(exc).splitlines()[0]}") from None
    coll = _collateral(
        evidence, str(fmspc).upper(), collateral, from_evidence=accept_evidence_collateral
    )
    # 3. dcap-qvl: chain to the pinned root, collateral validity at `now`, QE, TCB, debug.
    seconds = _seconds(now)
    try:
        verified = dcap_qvl.verify_with_root_ca(quote, coll, root, seconds)
    except ValueError as exc:
        raise _map_failure(str(exc)) from None
    report = json.loads(verified.to_json())
    # 4. Read the verified report; it must agree with the bytes we framed.
    body: dict[str, Any] = next(iter(report["report"].values()))
    body = body.get("base", body)  # TDREPORT 1.5 nests the 1.0 fields under "base"
    start = frame.report_data_offset
    # A guard against a parser differential; no vector or mutation has ever reached it.
    report_data = bytes.fromhex(body["report_data"])
    if not ct_equal(report_data, quote[start : start + 64]):  # pragma: no cover
        raise EvidenceFormatError("report data differs between parsers", offset=start)
    measurements = _sgx(body) if frame.tee_type is TeeType.SGX else _tdx(body)
    measurements["fmspc"] = str(fmspc).upper()
    return VerifiedQuote(
        tee=evidence.tee,
        report_data=report_data,
        debug=_debug(frame.tee_type, measurements),
        measurements=measurements,
        tcb_status=str(verified.status),
        tcb_evaluation_data_number=_evaluation_data_number(coll.tcb_info),
        advisory_ids=tuple(str(a) for a in verified.advisory_ids),
        details={"quote_version": str(int(frame.version)), "ppid": report.get("ppid", "")},
    )


def _evaluation_data_number(tcb_info: str) -> int:
    """The TCB evaluation data number of TCB info that dcap-qvl has just verified."""
    number = json.loads(tcb_info).get("tcbEvaluationDataNumber")
    if not isinstance(number, int) or isinstance(number, bool):
        raise CollateralError("the TCB info has no tcbEvaluationDataNumber")
    return number


def _seconds(now: datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("appraisal time must be timezone-aware")
    return int(now.timestamp())


def _sgx(body: dict[str, Any]) -> dict[str, str | int]:
    return {
        "mrenclave": body["mr_enclave"],
        "mrsigner": body["mr_signer"],
        "isv_prod_id": int(body["isv_prod_id"]),
        "isv_svn": int(body["isv_svn"]),
        "attributes": body["attributes"],
    }


def _tdx(body: dict[str, Any]) -> dict[str, str | int]:
    return {
        "mrtd": body["mr_td"],
        "rtmr0": body["rt_mr0"],
        "rtmr1": body["rt_mr1"],
        "rtmr2": body["rt_mr2"],
        "rtmr3": body["rt_mr3"],
        "mr_config_id": body["mr_config_id"],
        "mr_owner": body["mr_owner"],
        "mr_owner_config": body["mr_owner_config"],
        "mr_seam": body["mr_seam"],
        "td_attributes": body["td_attributes"],
        "xfam": body["xfam"],
    }


def _debug(tee_type: TeeType, measurements: dict[str, str | int]) -> bool:
    """Defence in depth: dcap-qvl already refuses debug enclaves and TDs."""
    if tee_type is TeeType.SGX:  # SGX ATTRIBUTES.FLAGS bit 1 (DEBUG), little-endian
        return bool(bytes.fromhex(str(measurements["attributes"]))[0] & 0x02)
    return bool(bytes.fromhex(str(measurements["td_attributes"]))[0] & 0x01)  # TUD.DEBUG
