"""AMD endorsement certificates (VCEK, VLEK): loading them and reading AMD's extensions.

Spec: AMD pub. 57230, "Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface
Specification", table of VCEK certificate extensions (OIDs under 1.3.6.1.4.1.3704.1).
VLEK certificates carry the same product and SPL extensions.

Rules:

* a certificate is DER of at most ``MAX_CERTIFICATE_SIZE`` bytes; anything ``cryptography``
  refuses is an :class:`~modellease.errors.EvidenceFormatError`;
* one certificate, one encoding: the signatureValue BIT STRING (the certificate's last
  field) must declare 0 unused bits. ``cryptography`` also accepts 1..7 unused zero bits,
  which leaves the signature unchanged and gives the same certificate a second byte string;
* every AMD VCEK/VLEK has serial number 0, which RFC 5280 forbids, and ``cryptography``
  warns about it (``CryptographyDeprecationWarning``) while still loading it; that one
  warning, matched by category and message, is silenced inside :func:`load_certificate`
  and nowhere else. A test fails as soon as a release turns it into an error;
* productName (``.1.2``) is an IA5String ``<Product>[-<stepping>]`` ("Milan-B0", "Milan");
  the product is the part before the first ``-`` and must be Milan, Genoa or Turin. It is
  read *before* the chain is verified, to choose the pinned roots, hence
  :func:`unverified_product`: a lie there only selects roots the certificate then fails;
* the SPLs are DER INTEGERs 0..255: blSPL ``.3.1``, teeSPL ``.3.2``, snpSPL ``.3.3``,
  ucodeSPL ``.3.8``, and on Turin fmcSPL ``.3.9`` (required there, ignored before);
* hwID (``.1.4``, VCEK only) is raw bytes: 64 on Milan and Genoa, 8 on Turin;
* a missing, duplicated or malformed extension is an ``EvidenceFormatError``;
* reading ``serial_number`` warns again: nothing in this backend reads it, and
  :func:`~.verify.verify_snp` never hands a certificate out.
"""

from __future__ import annotations

import warnings
from enum import StrEnum
from types import MappingProxyType

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from modellease.attestation.backends.sev_snp._der import der_ia5_string, der_uint8
from modellease.attestation.backends.sev_snp.tcb import Product, TcbComponents
from modellease.errors import EvidenceFormatError

MAX_CERTIFICATE_SIZE = 16 * 1024  # real VCEKs/VLEKs are 1.3 KiB; room for growth, no more

_AMD = "1.3.6.1.4.1.3704.1"
_OID_PRODUCT_NAME = x509.ObjectIdentifier(f"{_AMD}.2")
_OID_BL_SPL = x509.ObjectIdentifier(f"{_AMD}.3.1")
_OID_TEE_SPL = x509.ObjectIdentifier(f"{_AMD}.3.2")
_OID_SNP_SPL = x509.ObjectIdentifier(f"{_AMD}.3.3")
_OID_UCODE_SPL = x509.ObjectIdentifier(f"{_AMD}.3.8")
_OID_FMC_SPL = x509.ObjectIdentifier(f"{_AMD}.3.9")
_OID_HW_ID = x509.ObjectIdentifier(f"{_AMD}.4")

# cryptography's message for the serial-0 warning; matched so that nothing else is hidden.
_SERIAL_WARNING = r"Parsed a serial number which wasn't positive"

_PRODUCTS = MappingProxyType(
    {"Milan": Product.MILAN, "Genoa": Product.GENOA, "Turin": Product.TURIN}
)
_HW_ID_SIZES = MappingProxyType({Product.MILAN: 64, Product.GENOA: 64, Product.TURIN: 8})


class EndorsementKind(StrEnum):
    """Which AMD key endorses a report, named as in endorsements and measurements."""

    VCEK = "vcek"  # Versioned Chip Endorsement Key: one per chip and TCB, from AMD's KDS
    VLEK = "vlek"  # Versioned Loaded Endorsement Key: one per cloud provider, loaded by it


def load_certificate(der: bytes) -> x509.Certificate:
    """Load a DER endorsement certificate, tolerating only the serial-0 warning."""
    if len(der) > MAX_CERTIFICATE_SIZE:
        raise EvidenceFormatError(
            f"the endorsement certificate is {len(der)} bytes; the limit is {MAX_CERTIFICATE_SIZE}"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=_SERIAL_WARNING, category=CryptographyDeprecationWarning
        )
        try:
            cert = x509.load_der_x509_certificate(der)
        except (ValueError, x509.InvalidVersion):
            raise EvidenceFormatError(
                "the endorsement certificate is not a DER X.509 certificate"
            ) from None
    if not der.endswith(b"\x00" + cert.signature):
        raise EvidenceFormatError("the endorsement certificate's signature has unused bits")
    return cert


def _extension_bytes(cert: x509.Certificate, oid: x509.ObjectIdentifier, name: str) -> bytes:
    """The raw extnValue contents of the extension ``oid``."""
    try:
        extension = cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        raise EvidenceFormatError(f"the endorsement certificate has no {name} extension") from None
    except (ValueError, x509.DuplicateExtension):
        raise EvidenceFormatError(
            "the endorsement certificate's extensions are malformed"
        ) from None
    return extension.value.public_bytes()


def unverified_product(cert: x509.Certificate) -> Product:
    """The product line named by productName, read before the certificate is verified."""
    name = der_ia5_string(
        _extension_bytes(cert, _OID_PRODUCT_NAME, "productName"), what="productName"
    )
    product = _PRODUCTS.get(name.split("-", 1)[0])
    if product is None:
        raise EvidenceFormatError(f"unknown AMD product name {name!r}")
    return product


def _spl(cert: x509.Certificate, oid: x509.ObjectIdentifier, name: str) -> int:
    return der_uint8(_extension_bytes(cert, oid, name), what=name)


def spl_components(cert: x509.Certificate, product: Product) -> TcbComponents:
    """The TCB the certificate was issued for, from its SPL extensions."""
    return TcbComponents(
        boot_loader=_spl(cert, _OID_BL_SPL, "blSPL"),
        tee=_spl(cert, _OID_TEE_SPL, "teeSPL"),
        snp=_spl(cert, _OID_SNP_SPL, "snpSPL"),
        microcode=_spl(cert, _OID_UCODE_SPL, "ucodeSPL"),
        fmc=_spl(cert, _OID_FMC_SPL, "fmcSPL") if product is Product.TURIN else None,
    )


def hardware_id(cert: x509.Certificate, product: Product) -> bytes:
    """The chip identifier a VCEK was issued for (hwID), of the size ``product`` uses."""
    hw_id = _extension_bytes(cert, _OID_HW_ID, "hwID")
    if len(hw_id) != _HW_ID_SIZES[product]:
        raise EvidenceFormatError(
            f"hwID is {len(hw_id)} bytes; {product.value} uses {_HW_ID_SIZES[product]}"
        )
    return hw_id
