"""The SEV-SNP ATTESTATION_REPORT: 1184 bytes, little-endian, signed by the AMD Secure Processor.

Layout: AMD pub. 56860, SEV-SNP Firmware ABI, "ATTESTATION_REPORT Structure" (Table 21 in
rev 1.51/1.52, Table 22 in rev 1.55, Table 23 in rev 1.57+). An :class:`SnpReport` is
*unverified*: :func:`~.verify.verify_snp` is what checks its signature.

Rules:

* the report is exactly ``REPORT_SIZE`` (0x4A0) bytes; shorter or longer is refused;
* VERSION is 2 (ABI <= 1.55), 3 (adds CPUID_FAM_ID/MOD_ID/STEP at 0x188) or 5 (adds
  LAUNCH_MIT_VECTOR and CURRENT_MIT_VECTOR at 0x1F8/0x200); any other value, 4 included,
  is refused because we do not know its layout;
* SIGNATURE_ALGO must be 1 (ECDSA P-384 with SHA-384), the only algorithm defined;
* SIGNER_INFO.SIGNING_KEY must be 0 (VCEK), 1 (VLEK) or 7 (none); 2..6 are reserved;
* POLICY bit 17 is reserved and must be 1;
* the signed bytes are ``data[0:0x2A0]``; reserved bytes inside them are covered by the
  signature and not interpreted;
* every byte *outside* the signed region is accounted for: R and S are 72-byte little-endian
  fields holding 48-byte P-384 integers, so their top 24 bytes must be zero, and 0x330..0x4A0
  must be zero; otherwise a flipped unsigned byte would still pass verification;
* every failure is an :class:`~modellease.errors.EvidenceFormatError` with the offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from modellease.attestation.backends.sev_snp._reader import ByteReader
from modellease.attestation.backends.sev_snp.tcb import (
    TCB_VERSION_SIZE,
    Product,
    TcbComponents,
    tcb_components,
)
from modellease.errors import EvidenceFormatError

REPORT_SIZE = 0x4A0  # 1184 bytes
SIGNED_SIZE = 0x2A0  # the signature covers data[0:0x2A0]
_SIGNATURE_COMPONENT_SIZE = 72  # R and S are each stored in a 72-byte little-endian field
_P384_SCALAR_SIZE = 48  # ...of which a P-384 integer uses the low 48 bytes
_REPORT_DATA_SIZE = 64
_MEASUREMENT_SIZE = 48
_CHIP_ID_SIZE = 64

# POLICY bits (ABI, "GUEST_POLICY Structure", Table 9/10 in recent revisions).
POLICY_SMT = 1 << 16
POLICY_RESERVED_MUST_BE_ONE = 1 << 17
POLICY_MIGRATE_MA = 1 << 18
POLICY_DEBUG = 1 << 19
POLICY_SINGLE_SOCKET = 1 << 20

# SIGNER_INFO bits (offset 0x48).
_AUTHOR_KEY_EN = 1 << 0
_MASK_CHIP_KEY = 1 << 1
_SIGNING_KEY_SHIFT = 2
_SIGNING_KEY_MASK = 0b111


class ReportVersion(IntEnum):
    """ATTESTATION_REPORT versions whose layout this parser knows."""

    V2 = 2
    V3 = 3
    V5 = 5


class SignatureAlgorithm(IntEnum):
    """SIGNATURE_ALGO values; 1 is the only algorithm the ABI defines for reports."""

    ECDSA_P384_SHA384 = 1


class SigningKey(IntEnum):
    """SIGNER_INFO.SIGNING_KEY: which key signed the report."""

    VCEK = 0
    VLEK = 1
    NONE = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class SnpReport:
    """One parsed ATTESTATION_REPORT. Its fields are unverified until its signature is."""

    version: ReportVersion
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: SignatureAlgorithm
    current_tcb: bytes
    platform_info: int
    author_key_en: bool
    mask_chip_key: bool
    signing_key: SigningKey
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    cpuid_fam_id: int | None  # version 3 and later
    cpuid_mod_id: int | None
    cpuid_step: int | None
    chip_id: bytes
    committed_tcb: bytes
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: bytes
    launch_mit_vector: int | None  # version 5 and later
    current_mit_vector: int | None
    signature_r: int
    signature_s: int
    signed_bytes: bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> SnpReport:
        """Parse a report; any deviation from the rules above is an ``EvidenceFormatError``."""
        if not isinstance(data, bytes):
            raise TypeError("an SNP report is bytes")
        if len(data) != REPORT_SIZE:
            raise EvidenceFormatError(
                f"an SNP report is {REPORT_SIZE} bytes, this one is {len(data)}",
                offset=min(len(data), REPORT_SIZE),
            )
        return _parse(ByteReader(data), signed_bytes=data[:SIGNED_SIZE])

    @property
    def debug_allowed(self) -> bool:
        """POLICY.DEBUG: the host may read and write the guest's memory."""
        return bool(self.policy & POLICY_DEBUG)

    @property
    def migrate_ma_allowed(self) -> bool:
        """POLICY.MIGRATE_MA: a migration agent may be associated with the guest."""
        return bool(self.policy & POLICY_MIGRATE_MA)

    @property
    def smt_allowed(self) -> bool:
        """POLICY.SMT: the guest may run with simultaneous multithreading enabled."""
        return bool(self.policy & POLICY_SMT)

    @property
    def single_socket_required(self) -> bool:
        """POLICY.SINGLE_SOCKET: the guest may only be activated on one socket."""
        return bool(self.policy & POLICY_SINGLE_SOCKET)

    def reported_tcb_components(self, product: Product) -> TcbComponents:
        """REPORTED_TCB read with ``product``'s layout (see :mod:`.tcb`)."""
        return tcb_components(self.reported_tcb, product)


_E = TypeVar("_E", bound=IntEnum)


def _enum_field(kind: type[_E], value: int, *, field: str, offset: int) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise EvidenceFormatError(f"{field} {value} is not supported", offset=offset) from None


def _signature_component(reader: ByteReader, *, field: str) -> int:
    """A 72-byte little-endian R or S whose top 24 bytes must be zero."""
    value = reader.uint(_P384_SCALAR_SIZE, field=field)
    reader.zeros(_SIGNATURE_COMPONENT_SIZE - _P384_SCALAR_SIZE, field=f"the unused top of {field}")
    return value


def _signature(reader: ByteReader) -> tuple[int, int]:
    """R and S at 0x2A0/0x2E8; the rest of the 512-byte SIGNATURE field must be zero."""
    r = _signature_component(reader, field="SIGNATURE.R")
    s = _signature_component(reader, field="SIGNATURE.S")
    reader.zeros(REPORT_SIZE - reader.offset, field="the unused rest of SIGNATURE")
    return r, s


def _parse(r: ByteReader, *, signed_bytes: bytes) -> SnpReport:
    version = _enum_field(ReportVersion, r.uint(4, field="VERSION"), field="VERSION", offset=0x000)
    guest_svn = r.uint(4, field="GUEST_SVN")
    policy = r.uint(8, field="POLICY")
    if not policy & POLICY_RESERVED_MUST_BE_ONE:
        raise EvidenceFormatError("POLICY bit 17 is reserved and must be 1", offset=0x008)
    family_id = r.take(16, field="FAMILY_ID")
    image_id = r.take(16, field="IMAGE_ID")
    vmpl = r.uint(4, field="VMPL")
    algo = _enum_field(
        SignatureAlgorithm, r.uint(4, field="SIGNATURE_ALGO"), field="SIGNATURE_ALGO", offset=0x034
    )
    current_tcb = r.take(TCB_VERSION_SIZE, field="CURRENT_TCB")
    platform_info = r.uint(8, field="PLATFORM_INFO")
    signer_info = r.uint(4, field="SIGNER_INFO")
    signing_key = _enum_field(
        SigningKey,
        (signer_info >> _SIGNING_KEY_SHIFT) & _SIGNING_KEY_MASK,
        field="SIGNER_INFO.SIGNING_KEY",
        offset=0x048,
    )
    r.take(4, field="reserved (0x4C)")
    report_data = r.take(_REPORT_DATA_SIZE, field="REPORT_DATA")
    measurement = r.take(_MEASUREMENT_SIZE, field="MEASUREMENT")
    host_data = r.take(32, field="HOST_DATA")
    id_key_digest = r.take(48, field="ID_KEY_DIGEST")
    author_key_digest = r.take(48, field="AUTHOR_KEY_DIGEST")
    report_id = r.take(32, field="REPORT_ID")
    report_id_ma = r.take(32, field="REPORT_ID_MA")
    reported_tcb = r.take(TCB_VERSION_SIZE, field="REPORTED_TCB")
    cpuid = r.take(3, field="CPUID_FAM_ID/MOD_ID/STEP")
    r.take(21, field="reserved (0x18B)")
    chip_id = r.take(_CHIP_ID_SIZE, field="CHIP_ID")
    committed_tcb = r.take(TCB_VERSION_SIZE, field="COMMITTED_TCB")
    current = r.take(4, field="CURRENT_BUILD/MINOR/MAJOR")
    committed = r.take(4, field="COMMITTED_BUILD/MINOR/MAJOR")
    launch_tcb = r.take(TCB_VERSION_SIZE, field="LAUNCH_TCB")
    launch_mit = r.uint(8, field="LAUNCH_MIT_VECTOR")
    current_mit = r.uint(8, field="CURRENT_MIT_VECTOR")
    r.take(SIGNED_SIZE - r.offset, field="reserved (0x208)")
    signature_r, signature_s = _signature(r)
    has_cpuid = version >= ReportVersion.V3
    has_mit = version >= ReportVersion.V5
    return SnpReport(
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        family_id=family_id,
        image_id=image_id,
        vmpl=vmpl,
        signature_algo=algo,
        current_tcb=current_tcb,
        platform_info=platform_info,
        author_key_en=bool(signer_info & _AUTHOR_KEY_EN),
        mask_chip_key=bool(signer_info & _MASK_CHIP_KEY),
        signing_key=signing_key,
        report_data=report_data,
        measurement=measurement,
        host_data=host_data,
        id_key_digest=id_key_digest,
        author_key_digest=author_key_digest,
        report_id=report_id,
        report_id_ma=report_id_ma,
        reported_tcb=reported_tcb,
        cpuid_fam_id=cpuid[0] if has_cpuid else None,
        cpuid_mod_id=cpuid[1] if has_cpuid else None,
        cpuid_step=cpuid[2] if has_cpuid else None,
        chip_id=chip_id,
        committed_tcb=committed_tcb,
        current_build=current[0],
        current_minor=current[1],
        current_major=current[2],
        committed_build=committed[0],
        committed_minor=committed[1],
        committed_major=committed[2],
        launch_tcb=launch_tcb,
        launch_mit_vector=launch_mit if has_mit else None,
        current_mit_vector=current_mit if has_mit else None,
        signature_r=signature_r,
        signature_s=signature_s,
        signed_bytes=signed_bytes,
    )
