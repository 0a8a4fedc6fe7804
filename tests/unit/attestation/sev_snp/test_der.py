"""The DER values inside AMD's extensions are read strictly: one encoding, nothing extra."""

from __future__ import annotations

import pytest

from modellease.attestation.backends.sev_snp._der import der_ia5_string, der_uint8
from modellease.errors import EvidenceFormatError


@pytest.mark.parametrize(
    ("encoded", "value"),
    [("020100", 0), ("020105", 5), ("02017f", 127), ("02020080", 128), ("020200d9", 217)],
)
def test_spl_integers(encoded: str, value: int) -> None:
    assert der_uint8(bytes.fromhex(encoded), what="spl") == value


@pytest.mark.parametrize(
    "encoded",
    [
        "",  # nothing
        "02",  # no length
        "0201",  # no content
        "020180",  # negative (-128)
        "0201ff",  # negative (-1)
        "0202007f",  # not minimal
        "02020100",  # 256: above a byte
        "020300ff00",  # three content bytes
        "02010000",  # trailing byte
        "0281010a",  # long-form length
        "030105",  # BIT STRING, not INTEGER
        "160105",  # IA5String
    ],
)
def test_spl_integers_other_encodings_are_refused(encoded: str) -> None:
    with pytest.raises(EvidenceFormatError, match="blSPL is not a DER INTEGER"):
        der_uint8(bytes.fromhex(encoded), what="blSPL")


@pytest.mark.parametrize(
    ("encoded", "text"), [(b"\x16\x08Milan-B0", "Milan-B0"), (b"\x16\x05Turin", "Turin")]
)
def test_product_names(encoded: bytes, text: str) -> None:
    assert der_ia5_string(encoded, what="productName") == text


@pytest.mark.parametrize(
    "encoded",
    [
        b"",
        b"\x16",
        b"\x0c\x05Milan",  # UTF8String
        b"\x16\x06Milan",  # length too long
        b"\x16\x04Milan",  # length too short
        b"\x16\x81\x05Milan",  # long-form length
        b"\x16\x05Mil\xe1n",  # not ASCII
    ],
)
def test_product_names_other_encodings_are_refused(encoded: bytes) -> None:
    with pytest.raises(EvidenceFormatError, match="productName is not a short DER IA5String"):
        der_ia5_string(encoded, what="productName")
