"""Pinned AMD root (ARK) and intermediate (ASK, ASVK) certificates; nothing is ever fetched.

The PEM files ship as package data in ``modellease/attestation/_roots/amd/``; their
README lists each file's DER SHA-256, subject, validity and source.

Rules:

* every shipped file is pinned by the SHA-256 of its DER encoding, written here as a
  constant; a file that does not match its pin raises :class:`PinnedRootError` each time
  it is loaded. That is a damaged or tampered installation, not bad evidence, so it is a
  ``RuntimeError`` and never an attestation refusal a caller might report and move on from;
* a VCEK is issued by the product's ASK (``SEV-<Product>``), a VLEK by its ASVK
  (``SEV-VLEK-<Product>``); both are issued by the product's ARK (``ARK-<Product>``);
  AMD pub. 57230, "VCEK Certificate" chain;
* pinned chains: Milan, Genoa and Turin for VCEKs, Milan for VLEKs. Any other
  (product, kind) has no pinned chain and is an
  :class:`~modellease.errors.EvidenceSignatureError`;
* files are read with :mod:`importlib.resources` once per process; the pins are checked on
  that read. Signatures and validity are checked on every verification, not here.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from cryptography import x509

from modellease._hazmat import certificate_der, ct_equal
from modellease.attestation.backends.sev_snp.certs import EndorsementKind
from modellease.attestation.backends.sev_snp.tcb import Product
from modellease.errors import EvidenceSignatureError

ARK_MILAN_SHA256 = "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd"
ARK_GENOA_SHA256 = "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1"
ARK_TURIN_SHA256 = "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a"
ASK_MILAN_SHA256 = "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b"
ASK_GENOA_SHA256 = "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521"
ASK_TURIN_SHA256 = "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185"
ASVK_MILAN_SHA256 = "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5"

_ROOTS_PACKAGE = "modellease"
_ROOTS_PATH = ("attestation", "_roots", "amd")


@dataclass(frozen=True, slots=True)
class _Pinned:
    file: str
    sha256: str


_ARKS: Mapping[Product, _Pinned] = MappingProxyType(
    {
        Product.MILAN: _Pinned("ark_milan.pem", ARK_MILAN_SHA256),
        Product.GENOA: _Pinned("ark_genoa.pem", ARK_GENOA_SHA256),
        Product.TURIN: _Pinned("ark_turin.pem", ARK_TURIN_SHA256),
    }
)
_INTERMEDIATES: Mapping[tuple[Product, EndorsementKind], _Pinned] = MappingProxyType(
    {
        (Product.MILAN, EndorsementKind.VCEK): _Pinned("ask_milan.pem", ASK_MILAN_SHA256),
        (Product.GENOA, EndorsementKind.VCEK): _Pinned("ask_genoa.pem", ASK_GENOA_SHA256),
        (Product.TURIN, EndorsementKind.VCEK): _Pinned("ask_turin.pem", ASK_TURIN_SHA256),
        (Product.MILAN, EndorsementKind.VLEK): _Pinned("asvk_milan.pem", ASVK_MILAN_SHA256),
    }
)
PINNED_CHAINS: frozenset[tuple[Product, EndorsementKind]] = frozenset(_INTERMEDIATES)
"""Every (product, endorsement kind) with a pinned chain."""


class PinnedRootError(RuntimeError):
    """A shipped AMD certificate does not match its pin: the installation is damaged."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AmdChain:
    """The pinned certificates above one kind of endorsement key for one product."""

    product: Product
    kind: EndorsementKind
    ark: x509.Certificate  # AMD Root Key, self-signed
    intermediate: x509.Certificate  # ASK for VCEKs, ASVK for VLEKs


def check_pin(der: bytes, *, sha256: str, name: str) -> None:
    """Refuse ``der`` unless its SHA-256 is the pinned hex digest ``sha256``."""
    if not ct_equal(hashlib.sha256(der).digest(), bytes.fromhex(sha256)):
        raise PinnedRootError(f"the pinned AMD certificate {name} does not match its SHA-256 pin")


def pinned_certificate_from_pem(pem: bytes, *, sha256: str, name: str) -> x509.Certificate:
    """Load one shipped PEM certificate and check it against its pin."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise PinnedRootError(
            f"the pinned AMD certificate {name} is not a PEM certificate"
        ) from None
    check_pin(certificate_der(cert), sha256=sha256, name=name)
    return cert


@functools.cache
def _load(pinned: _Pinned) -> x509.Certificate:
    path = resources.files(_ROOTS_PACKAGE).joinpath(*_ROOTS_PATH, pinned.file)
    return pinned_certificate_from_pem(path.read_bytes(), sha256=pinned.sha256, name=pinned.file)


def pinned_chain(product: Product, kind: EndorsementKind) -> AmdChain:
    """The pinned ARK and ASK/ASVK for ``product`` and ``kind``, pins checked."""
    intermediate = _INTERMEDIATES.get((product, kind))
    if intermediate is None:
        raise EvidenceSignatureError(
            f"no pinned AMD chain for {kind.value.upper()} certificates of {product.value}"
        )
    return AmdChain(
        product=product, kind=kind, ark=_load(_ARKS[product]), intermediate=_load(intermediate)
    )
