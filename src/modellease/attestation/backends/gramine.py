"""SGX attester inside a Gramine enclave, through ``/dev/attestation``.

Rules (Gramine documentation, "Attestation and Secret Provisioning"):

* ``attestation_type`` must read ``dcap``: anything else cannot produce a DCAP quote;
* the 64-byte report data is written to ``user_report_data`` in one write, then ``quote`` is
  read; Gramine does not lock between processes, so one attester per enclave;
* the quote's zero padding is stripped so the verifier can demand an exact length.
"""

from __future__ import annotations

from pathlib import Path

from modellease.attestation.backends.dcap import strip_padding
from modellease.attestation.backends.kernel import KernelFiles, OsKernelFiles
from modellease.attestation.evidence import TeeKind
from modellease.errors import AttesterUnavailableError, EvidenceFormatError

GRAMINE_ROOT = Path("/dev/attestation")


class GramineAttester:
    """Produces SGX DCAP quotes binding 64 bytes of report data."""

    tee = TeeKind.SGX

    def __init__(self, root: Path = GRAMINE_ROOT, files: KernelFiles | None = None) -> None:
        self._root = root
        self._files = files or OsKernelFiles()

    def attest(self, report_data: bytes) -> tuple[bytes, dict[str, bytes]]:
        if len(report_data) != 64:
            raise ValueError("report data is 64 bytes")
        kind = self._files.read(self._root / "attestation_type").strip()
        if kind != b"dcap":
            raise AttesterUnavailableError(
                f"Gramine attestation type is {kind.decode(errors='replace')!r}, not 'dcap': "
                'set sgx.remote_attestation = "dcap" in the manifest'
            )
        self._files.write(self._root / "user_report_data", report_data)
        try:
            return strip_padding(self._files.read(self._root / "quote")), {}
        except EvidenceFormatError as exc:
            raise AttesterUnavailableError(f"Gramine returned an unusable quote: {exc}") from None
