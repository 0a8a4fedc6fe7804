"""TDX and SEV-SNP attester inside a confidential VM, through Linux configfs-tsm.

Rules (Linux ``Documentation/ABI/testing/configfs-tsm-report``):

* one request object per report: ``mkdir`` a fresh entry under the report directory,
  ``rmdir`` it afterwards whatever happens;
* ``provider`` must be ``tdx_guest`` for TDX or ``sev_guest`` for SEV-SNP;
* ``inblob`` takes exactly 64 bytes in one write (both providers refuse anything else);
* ``generation`` counts writes: read it before writing and after reading ``outblob``; any
  difference other than our own writes means another process raced us, and the report is
  discarded (the caller may retry);
* TDX ``outblob`` is a DCAP quote (padding stripped); SEV-SNP ``outblob`` is the report and
  ``auxblob`` the certificate table (GHCB spec, MSG_REPORT_REQ), from which the VCEK or VLEK
  becomes an endorsement.
"""

from __future__ import annotations

import contextlib
import secrets
import struct
import uuid
from pathlib import Path

from modellease.attestation.backends.dcap import strip_padding
from modellease.attestation.backends.kernel import KernelFiles, OsKernelFiles
from modellease.attestation.evidence import TeeKind
from modellease.errors import AttesterUnavailableError, EvidenceFormatError

TSM_REPORT_ROOT = Path("/sys/kernel/config/tsm/report")
PROVIDERS = {TeeKind.TDX: "tdx_guest", TeeKind.SEV_SNP: "sev_guest"}

# GHCB specification (AMD pub. 56421), certificate table GUIDs
CERT_TABLE_ENTRY = struct.Struct("<16sII")
VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
VLEK_GUID = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
MAX_CERT_ENTRIES = 16


class TsmAttester:
    """Produces TDX quotes or SEV-SNP reports binding 64 bytes of report data."""

    def __init__(
        self,
        tee: TeeKind,
        *,
        root: Path = TSM_REPORT_ROOT,
        files: KernelFiles | None = None,
        privlevel: int | None = None,
    ) -> None:
        if tee not in PROVIDERS:
            raise ValueError("configfs-tsm serves TDX and SEV-SNP only")
        if privlevel is not None and (tee is not TeeKind.SEV_SNP or not 0 <= privlevel <= 3):
            raise ValueError("privlevel is an SEV-SNP VMPL between 0 and 3")
        self.tee = tee
        self._root = root
        self._files = files or OsKernelFiles()
        self._privlevel = privlevel

    def attest(self, report_data: bytes) -> tuple[bytes, dict[str, bytes]]:
        if len(report_data) != 64:
            raise ValueError("report data is 64 bytes")
        entry = self._root / f"modellease-{secrets.token_hex(8)}"
        self._files.mkdir(entry)
        try:
            outblob, auxblob = self._request(entry, report_data)
        except BaseException:
            with contextlib.suppress(AttesterUnavailableError):
                self._files.rmdir(entry)  # never hide the original failure behind this one
            raise
        self._files.rmdir(entry)
        if self.tee is TeeKind.TDX:
            try:
                return strip_padding(outblob), {}
            except EvidenceFormatError as exc:
                raise AttesterUnavailableError(f"the TDX quote is unusable: {exc}") from None
        return outblob, endorsements_from_cert_table(auxblob)

    def _request(self, entry: Path, report_data: bytes) -> tuple[bytes, bytes]:
        provider = self._files.read(entry / "provider").strip().decode(errors="replace")
        if provider != PROVIDERS[self.tee]:
            raise AttesterUnavailableError(
                f"configfs-tsm provider is {provider!r}, expected {PROVIDERS[self.tee]!r}"
            )
        before = _generation(self._files.read(entry / "generation"))
        writes = 0
        if self._privlevel is not None:
            self._files.write(entry / "privlevel", str(self._privlevel).encode())
            writes += 1
        self._files.write(entry / "inblob", report_data)
        writes += 1
        outblob = self._files.read(entry / "outblob")
        auxblob = self._files.read(entry / "auxblob") if self.tee is TeeKind.SEV_SNP else b""
        after = _generation(self._files.read(entry / "generation"))
        if after != before + writes:
            raise AttesterUnavailableError("another writer changed the report request; retry")
        return outblob, auxblob


def _generation(raw: bytes) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise AttesterUnavailableError("configfs-tsm generation is not a number") from None


def endorsements_from_cert_table(table: bytes) -> dict[str, bytes]:
    """Pick the VCEK or VLEK certificate out of an SEV-SNP certificate table."""
    found: dict[str, bytes] = {}
    if not table:  # the host provisioned no certificates; the VCEK must come from elsewhere
        return found
    for index in range(MAX_CERT_ENTRIES):
        start = index * CERT_TABLE_ENTRY.size
        if start + CERT_TABLE_ENTRY.size > len(table):
            raise AttesterUnavailableError("certificate table is not terminated")
        guid_bytes, offset, length = CERT_TABLE_ENTRY.unpack_from(table, start)
        if guid_bytes == bytes(16) and offset == 0 and length == 0:
            return found
        if offset + length > len(table):
            raise AttesterUnavailableError("certificate table entry points past its end")
        guid = uuid.UUID(bytes=guid_bytes)  # RFC 4122 byte order, as hosts write the table
        name = {VCEK_GUID: "vcek", VLEK_GUID: "vlek"}.get(guid)
        if name is not None:
            if name in found:
                raise AttesterUnavailableError(f"certificate table lists the {name} twice")
            found[name] = table[offset : offset + length]
    raise AttesterUnavailableError(f"certificate table has more than {MAX_CERT_ENTRIES} entries")
