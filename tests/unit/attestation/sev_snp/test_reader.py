"""The bounded reader never reads past the end and names the offset of what went wrong."""

from __future__ import annotations

import pytest

from modellease.attestation.backends.sev_snp._reader import ByteReader
from modellease.errors import EvidenceFormatError


def test_reads_fields_in_order_little_endian() -> None:
    reader = ByteReader(b"\x01\x02\x03\x04\xaa\xbb")
    assert reader.uint(4, field="a") == 0x04030201
    assert reader.offset == 4
    assert reader.remaining == 2
    assert reader.take(2, field="b") == b"\xaa\xbb"
    assert reader.remaining == 0
    assert reader.take(0, field="empty") == b""


def test_reading_past_the_end_is_refused_with_the_field_offset() -> None:
    reader = ByteReader(b"\x00" * 5)
    reader.take(4, field="first")
    with pytest.raises(EvidenceFormatError, match="second needs 2 bytes") as info:
        reader.take(2, field="second")
    assert info.value.offset == 4
    assert reader.offset == 4  # nothing was consumed


def test_negative_size_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="not negative"):
        ByteReader(b"abc").take(-1, field="x")


def test_zeros_accepts_zero_bytes() -> None:
    reader = ByteReader(bytes(8))
    reader.zeros(8, field="pad")
    assert reader.remaining == 0


@pytest.mark.parametrize("position", [0, 3, 7])
def test_zeros_reports_the_first_nonzero_byte(position: int) -> None:
    data = bytearray(10)
    data[2 + position] = 0x80
    reader = ByteReader(bytes(data))
    reader.take(2, field="head")
    with pytest.raises(EvidenceFormatError, match="pad must be zero") as info:
        reader.zeros(8, field="pad")
    assert info.value.offset == 2 + position
