"""Attesters against temporary directories laid out like the kernel interfaces."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest

from modellease.attestation import GramineAttester, TeeKind, TsmAttester
from modellease.attestation.backends.kernel import OsKernelFiles
from modellease.attestation.backends.sev_snp import verify_snp
from modellease.attestation.backends.tsm import (
    VCEK_GUID,
    VLEK_GUID,
    endorsements_from_cert_table,
)
from modellease.errors import AttesterUnavailableError
from modellease.testing.kernel import FakeGramine, FakeTsm
from tests.unit.attestation.sev_snp.snp_vectors import (
    TRUSTEE_REPORT,
    case_for,
    now_of,
    read,
    report_of,
)
from tests.unit.attestation.support import quote, raw_quote

REPORT_DATA = bytes(range(64))
TDX_PADDED = raw_quote("tdx-dcap/phala_tdx_quote")  # 5006 bytes: zero-padded as from hardware


def cert_table(entries: list[tuple[uuid.UUID, bytes]]) -> bytes:
    header_size = 24 * (len(entries) + 1)
    header, body = b"", b""
    for guid, cert in entries:
        header += struct.pack("<16sII", guid.bytes, header_size + len(body), len(cert))
        body += cert
    return header + bytes(24) + body


def test_tdx_attester_writes_inblob_and_returns_the_unpadded_quote(tmp_path: Path) -> None:
    seen: list[bytes] = []

    def hardware(inblob: bytes) -> bytes:
        seen.append(inblob)
        return TDX_PADDED

    kernel = FakeTsm(tmp_path / "report", provider="tdx_guest", outblob=hardware)
    attester = TsmAttester(TeeKind.TDX, root=tmp_path / "report", files=kernel)
    got, endorsements = attester.attest(REPORT_DATA)
    assert seen == [REPORT_DATA]
    assert got == quote("tdx-dcap/phala_tdx_quote")
    assert endorsements == {}
    assert list((tmp_path / "report").iterdir()) == []  # the request entry was removed


def test_snp_attester_returns_the_report_and_its_vcek(tmp_path: Path) -> None:
    c = case_for(TRUSTEE_REPORT)
    vcek = read(c["endorsement"])
    table = cert_table(
        [(uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782"), b"ask"), (VCEK_GUID, vcek)]
    )
    kernel = FakeTsm(tmp_path, provider="sev_guest", outblob=lambda _: report_of(c), auxblob=table)
    attester = TsmAttester(TeeKind.SEV_SNP, root=tmp_path, files=kernel, privlevel=0)
    report, endorsements = attester.attest(REPORT_DATA)
    assert endorsements == {"vcek": vcek}
    assert verify_snp(report, endorsements, now=now_of(c)).tee is TeeKind.SEV_SNP


def test_wrong_provider_is_refused_and_cleaned_up(tmp_path: Path) -> None:
    kernel = FakeTsm(tmp_path, provider="sev_guest", outblob=lambda _: b"")
    with pytest.raises(
        AttesterUnavailableError, match="provider is 'sev_guest', expected 'tdx_guest'"
    ):
        TsmAttester(TeeKind.TDX, root=tmp_path, files=kernel).attest(REPORT_DATA)
    assert list(tmp_path.iterdir()) == []


def test_a_racing_writer_is_detected(tmp_path: Path) -> None:
    kernel = FakeTsm(tmp_path, provider="tdx_guest", outblob=lambda _: TDX_PADDED)
    kernel.raced = True
    with pytest.raises(AttesterUnavailableError, match="another writer"):
        TsmAttester(TeeKind.TDX, root=tmp_path, files=kernel).attest(REPORT_DATA)


def test_kernel_rules_are_enforced(tmp_path: Path) -> None:
    kernel = FakeTsm(tmp_path, provider="tdx_guest", outblob=lambda _: TDX_PADDED)
    entry = tmp_path / "r"
    kernel.mkdir(entry)
    assert sorted(p.name for p in entry.iterdir()) == [
        "auxblob",
        "generation",
        "inblob",
        "outblob",
        "privlevel",
        "privlevel_floor",
        "provider",
    ]
    with pytest.raises(AttesterUnavailableError, match="Invalid argument"):
        kernel.write(entry / "inblob", b"x" * 63)
    with pytest.raises(AttesterUnavailableError, match="Permission denied"):
        kernel.write(entry / "outblob", b"x")
    with pytest.raises(AttesterUnavailableError, match="Permission denied"):
        kernel.read(entry / "inblob")
    with pytest.raises(AttesterUnavailableError, match="File exists"):
        kernel.mkdir(entry)
    with pytest.raises(ValueError, match="64 bytes"):
        TsmAttester(TeeKind.TDX, root=tmp_path, files=kernel).attest(b"short")


def test_unusable_tdx_outblob(tmp_path: Path) -> None:
    kernel = FakeTsm(tmp_path, provider="tdx_guest", outblob=lambda _: b"junk")
    with pytest.raises(AttesterUnavailableError, match="TDX quote is unusable"):
        TsmAttester(TeeKind.TDX, root=tmp_path, files=kernel).attest(REPORT_DATA)


def test_garbled_generation(tmp_path: Path) -> None:
    class Garbled(FakeTsm):
        def read(self, path: Path) -> bytes:
            return b"many" if path.name == "generation" else super().read(path)

    kernel = Garbled(tmp_path, provider="tdx_guest", outblob=lambda _: TDX_PADDED)
    with pytest.raises(AttesterUnavailableError, match="generation is not a number"):
        TsmAttester(TeeKind.TDX, root=tmp_path, files=kernel).attest(REPORT_DATA)


def test_attester_arguments() -> None:
    with pytest.raises(ValueError, match="TDX and SEV-SNP only"):
        TsmAttester(TeeKind.SGX)
    with pytest.raises(ValueError, match="privlevel"):
        TsmAttester(TeeKind.TDX, privlevel=0)
    with pytest.raises(ValueError, match="privlevel"):
        TsmAttester(TeeKind.SEV_SNP, privlevel=4)


def test_cert_table_parsing() -> None:
    assert endorsements_from_cert_table(b"") == {}
    assert endorsements_from_cert_table(cert_table([(VLEK_GUID, b"vlek")])) == {"vlek": b"vlek"}
    with pytest.raises(AttesterUnavailableError, match="not terminated"):
        endorsements_from_cert_table(struct.pack("<16sII", VCEK_GUID.bytes, 0, 0))
    bad = struct.pack("<16sII", VCEK_GUID.bytes, 1000, 10) + bytes(24)
    with pytest.raises(AttesterUnavailableError, match="points past its end"):
        endorsements_from_cert_table(bad)
    many = b"".join(struct.pack("<16sII", uuid.uuid4().bytes, 0, 0) for _ in range(17))
    with pytest.raises(AttesterUnavailableError, match="more than 16 entries"):
        endorsements_from_cert_table(many)
    twice = cert_table([(VCEK_GUID, b"a"), (VCEK_GUID, b"b")])
    with pytest.raises(AttesterUnavailableError, match="lists the vcek twice"):
        endorsements_from_cert_table(twice)


def test_cert_table_guids_are_in_rfc4122_byte_order() -> None:
    """Hosts write the GHCB table with libuuid byte order: 63 da 75 8d ... for the VCEK."""
    table = (
        bytes.fromhex("63da758de6644564adc5f4b93be8accd")
        + struct.pack("<II", 48, 3)
        + bytes(24)
        + b"der"
    )
    assert endorsements_from_cert_table(table) == {"vcek": b"der"}


def test_a_failing_cleanup_does_not_hide_the_original_error(tmp_path: Path) -> None:
    class StuckEntries(FakeTsm):
        def rmdir(self, path: Path) -> None:
            raise AttesterUnavailableError("cannot remove")

    kernel = StuckEntries(tmp_path, provider="sev_guest", outblob=lambda _: b"")
    with pytest.raises(AttesterUnavailableError, match="provider is 'sev_guest'"):
        TsmAttester(TeeKind.TDX, root=tmp_path, files=kernel).attest(REPORT_DATA)


def test_gramine_attester(tmp_path: Path) -> None:
    sgx = quote("sgx-dcap/phala_sgx_quote")
    kernel = FakeGramine(
        tmp_path, quote=lambda rd: sgx + bytes(8192 - len(sgx)) if rd == REPORT_DATA else b""
    )
    got, endorsements = GramineAttester(tmp_path, files=kernel).attest(REPORT_DATA)
    assert (got, endorsements) == (sgx, {})
    assert (tmp_path / "user_report_data").read_bytes() == REPORT_DATA
    with pytest.raises(AttesterUnavailableError, match="Invalid argument"):
        kernel.write(tmp_path / "user_report_data", b"x" * 65)
    with pytest.raises(AttesterUnavailableError, match="Permission denied"):
        kernel.write(tmp_path / "quote", b"x")
    with pytest.raises(ValueError, match="64 bytes"):
        GramineAttester(tmp_path, files=kernel).attest(b"x")


def test_gramine_without_dcap_or_with_a_bad_quote(tmp_path: Path) -> None:
    none = FakeGramine(tmp_path / "a", quote=lambda _: b"", attestation_type="none")
    with pytest.raises(AttesterUnavailableError, match="'none', not 'dcap'"):
        GramineAttester(tmp_path / "a", files=none).attest(REPORT_DATA)
    junk = FakeGramine(tmp_path / "b", quote=lambda _: b"junk")
    with pytest.raises(AttesterUnavailableError, match="unusable quote"):
        GramineAttester(tmp_path / "b", files=junk).attest(REPORT_DATA)


def test_os_kernel_files_on_plain_files(tmp_path: Path) -> None:
    files = OsKernelFiles()
    files.mkdir(tmp_path / "d")
    (tmp_path / "d" / "f").write_bytes(b"")
    files.write(tmp_path / "d" / "f", b"abc")
    assert files.read(tmp_path / "d" / "f") == b"abc"
    (tmp_path / "d" / "f").unlink()
    files.rmdir(tmp_path / "d")
    for call in (
        lambda: files.read(tmp_path / "none"),
        lambda: files.write(tmp_path / "none", b""),
        lambda: files.mkdir(tmp_path / "x" / "y"),
        lambda: files.rmdir(tmp_path / "none"),
    ):
        with pytest.raises(AttesterUnavailableError, match="cannot"):
            call()
    (tmp_path / "dir").mkdir()
    with pytest.raises(AttesterUnavailableError, match="cannot read"):
        files.read(tmp_path / "dir")
    with pytest.raises(AttesterUnavailableError, match="cannot open"):
        files.write(tmp_path / "dir", b"x")


def test_gramine_defaults_to_the_real_device() -> None:
    attester = GramineAttester()
    with pytest.raises(AttesterUnavailableError, match="/dev/attestation"):
        attester.attest(REPORT_DATA)


def test_os_kernel_files_report_refused_writes() -> None:
    with pytest.raises(AttesterUnavailableError, match="the kernel refused /dev/full"):
        OsKernelFiles().write(Path("/dev/full"), b"x")
