"""Endorsement certificates: loading real VCEKs/VLEKs and reading AMD's extensions strictly."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from modellease.attestation.backends.sev_snp import (
    MAX_CERTIFICATE_SIZE,
    Product,
    TcbComponents,
    hardware_id,
    load_certificate,
    spl_components,
    unverified_product,
)
from modellease.errors import EvidenceFormatError
from tests.unit.attestation.sev_snp.snp_vectors import (
    CASE_IDS,
    CASES,
    TURIN_VCEK,
    read,
)

AMD = "1.3.6.1.4.1.3704.1"
MILAN_VCEK = "gosevguest_vcek.testcer"
VLEK = "trustee_snp_test-vlek.der"


def amd_cert(extensions: dict[str, bytes]) -> x509.Certificate:
    """A throwaway self-signed certificate carrying the given raw AMD extensions."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    )
    for oid, value in extensions.items():
        ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value)
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(key, hashes.SHA384())


def test_amd_serial_zero_is_still_only_a_warning_in_cryptography() -> None:
    """If this fails, cryptography now refuses serial 0: every real VCEK stops loading.

    Fallback (see the attestation research notes): parse TBS and signature with an ASN.1
    library and verify the RSASSA-PSS signature directly.
    """
    with pytest.warns(CryptographyDeprecationWarning, match="serial number"):
        cert = x509.load_der_x509_certificate(read(MILAN_VCEK))
    with pytest.warns(CryptographyDeprecationWarning, match="serial number"):
        assert cert.serial_number == 0  # reading it warns again: the backend never does


@pytest.mark.parametrize("name", [MILAN_VCEK, VLEK, TURIN_VCEK])
def test_load_certificate_silences_only_the_serial_warning(name: str) -> None:
    # pytest turns every other warning into an error, so loading quietly proves the filter.
    cert = load_certificate(read(name))
    assert cert.subject.rfc4514_string().startswith("CN=SEV-")


def test_load_certificate_refuses_oversized_input() -> None:
    with pytest.raises(EvidenceFormatError, match="limit"):
        load_certificate(read(MILAN_VCEK) + bytes(MAX_CERTIFICATE_SIZE))


@pytest.mark.parametrize("der", [b"", b"\x30\x00", b"not a certificate", b"\x30" * 1360])
def test_load_certificate_refuses_non_certificates(der: bytes) -> None:
    with pytest.raises(EvidenceFormatError, match=r"not a DER X\.509 certificate"):
        load_certificate(der)


def test_pem_is_not_accepted_as_der() -> None:
    pem = load_certificate(read(MILAN_VCEK)).public_bytes(Encoding.PEM)
    with pytest.raises(EvidenceFormatError):
        load_certificate(pem)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_recorded_endorsements_name_milan_and_certify_the_reported_tcb(case: dict) -> None:
    cert = load_certificate(read(case["endorsement"]))
    assert unverified_product(cert) is Product.MILAN
    raw = bytes.fromhex(case["reported_tcb"])
    assert spl_components(cert, Product.MILAN) == TcbComponents(
        boot_loader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7]
    )


@pytest.mark.parametrize("case", [c for c in CASES if c["signing_key"] == "VCEK"], ids=str)
def test_vcek_hwid_is_the_reports_chip_id(case: dict) -> None:
    cert = load_certificate(read(case["endorsement"]))
    assert hardware_id(cert, Product.MILAN).hex() == case["chip_id"]


def test_turin_vcek_extensions() -> None:
    cert = load_certificate(read(TURIN_VCEK))
    assert unverified_product(cert) is Product.TURIN
    assert spl_components(cert, Product.TURIN) == TcbComponents(
        fmc=0, boot_loader=0, tee=0, snp=0, microcode=9
    )
    assert hardware_id(cert, Product.TURIN).hex() == "1e550a8ee5cf9f4d"


def test_a_vlek_has_no_hwid() -> None:
    with pytest.raises(EvidenceFormatError, match="no hwID extension"):
        hardware_id(load_certificate(read(VLEK)), Product.MILAN)


def test_a_milan_vcek_has_no_fmc_spl() -> None:
    with pytest.raises(EvidenceFormatError, match="no fmcSPL extension"):
        spl_components(load_certificate(read(MILAN_VCEK)), Product.TURIN)


def test_hwid_of_the_wrong_size_for_the_product_is_refused() -> None:
    with pytest.raises(EvidenceFormatError, match="hwID is 64 bytes; turin uses 8"):
        hardware_id(load_certificate(read(MILAN_VCEK)), Product.TURIN)


@pytest.mark.parametrize(
    ("name", "product"),
    [
        ("Milan-B0", Product.MILAN),
        ("Milan", Product.MILAN),
        ("Genoa-B1", Product.GENOA),
        ("Turin", Product.TURIN),
        ("Turin-C1-extra", Product.TURIN),
    ],
)
def test_product_names(name: str, product: Product) -> None:
    value = b"\x16" + bytes([len(name)]) + name.encode()
    assert unverified_product(amd_cert({f"{AMD}.2": value})) is product


@pytest.mark.parametrize("name", ["Rome-B0", "milan", "MilanX", "", "-Milan", "Bergamo"])
def test_unknown_product_names_are_refused(name: str) -> None:
    value = b"\x16" + bytes([len(name)]) + name.encode()
    with pytest.raises(EvidenceFormatError, match="unknown AMD product name"):
        unverified_product(amd_cert({f"{AMD}.2": value}))


def test_missing_product_name_is_refused() -> None:
    with pytest.raises(EvidenceFormatError, match="no productName extension"):
        unverified_product(amd_cert({}))


def test_product_name_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(EvidenceFormatError, match="productName is not a short DER IA5String"):
        unverified_product(amd_cert({f"{AMD}.2": b"\x0c\x05Milan"}))


def test_spl_of_the_wrong_encoding_is_refused() -> None:
    cert = amd_cert(
        {
            f"{AMD}.3.1": b"\x02\x01\x01",
            f"{AMD}.3.2": b"\x02\x02\x00\x01",
            f"{AMD}.3.3": b"\x02\x01\x01",
        }
    )
    with pytest.raises(EvidenceFormatError, match="teeSPL is not a DER INTEGER"):
        spl_components(cert, Product.MILAN)


def test_duplicated_extensions_are_refused() -> None:
    der = read(MILAN_VCEK)
    # DER of the OIDs 1.3.6.1.4.1.3704.1.3.1 (blSPL) and .3.2 (teeSPL): make teeSPL a second blSPL.
    bl_oid = bytes.fromhex("060a2b060104019c78010301")
    tee_oid = bytes.fromhex("060a2b060104019c78010302")
    assert der.count(tee_oid) == 1
    cert = load_certificate(der.replace(tee_oid, bl_oid))
    with pytest.raises(EvidenceFormatError, match="extensions are malformed"):
        unverified_product(cert)


def test_malformed_standard_extension_is_refused() -> None:
    cert = amd_cert({"2.5.29.19": b"\xff\xff", f"{AMD}.2": b"\x16\x05Milan"})  # basicConstraints
    with pytest.raises(EvidenceFormatError, match="extensions are malformed"):
        unverified_product(cert)


def test_signature_bit_string_with_unused_bits_is_refused() -> None:
    # Same signature bytes, declared as 4095 bits: cryptography loads it and the chain would
    # still verify, so the certificate would have two encodings. Only the last bit is zero
    # in this certificate, which is what makes the padded form acceptable to the parser.
    der = read("virtee_vcek_milan.der")
    unused_bits = der.rindex(bytes.fromhex("0382020100")) + 4
    padded = der[:unused_bits] + b"\x01" + der[unused_bits + 1 :]
    with pytest.raises(EvidenceFormatError, match="signature has unused bits"):
        load_certificate(padded)


def test_unknown_x509_version_is_refused() -> None:
    der = read(MILAN_VCEK)
    version = der.index(bytes.fromhex("a003020102")) + 4  # [0] EXPLICIT INTEGER 2 (v3)
    with pytest.raises(EvidenceFormatError, match=r"not a DER X\.509 certificate"):
        load_certificate(der[:version] + b"\x03" + der[version + 1 :])
