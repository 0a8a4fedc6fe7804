"""Pinned AMD roots: shipped files match their pins, chain to themselves, and equal AMD KDS's."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from modellease.attestation.backends.sev_snp import (
    ARK_GENOA_SHA256,
    ARK_MILAN_SHA256,
    ARK_TURIN_SHA256,
    PINNED_CHAINS,
    EndorsementKind,
    PinnedRootError,
    Product,
    check_pin,
    pinned_certificate_from_pem,
    pinned_chain,
)
from modellease.errors import EvidenceSignatureError
from tests.unit.attestation.sev_snp.snp_vectors import VECTORS, case_for

ROOTS = resources.files("modellease").joinpath("attestation", "_roots", "amd")
CHAINS = sorted(PINNED_CHAINS)
KDS_CHAIN_FILES = {
    (Product.MILAN, EndorsementKind.VCEK): "gosevguest_ask_ark_milan.pem",
    (Product.GENOA, EndorsementKind.VCEK): "gosevguest_ask_ark_genoa.pem",
    (Product.TURIN, EndorsementKind.VCEK): "gosevguest_ask_ark_turin_vcek.pem",
    (Product.MILAN, EndorsementKind.VLEK): "gosevguest_ask_ark_milan_vlek.pem",
}
ARK_PINS = {
    Product.MILAN: ARK_MILAN_SHA256,
    Product.GENOA: ARK_GENOA_SHA256,
    Product.TURIN: ARK_TURIN_SHA256,
}


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def test_pinned_chains_are_the_four_shipped() -> None:
    assert set(PINNED_CHAINS) == set(KDS_CHAIN_FILES)


@pytest.mark.parametrize(("product", "kind"), CHAINS)
def test_pinned_chain_loads_and_is_signed_by_its_ark(
    product: Product, kind: EndorsementKind
) -> None:
    chain = pinned_chain(product, kind)
    assert (chain.product, chain.kind) == (product, kind)
    assert hashlib.sha256(der(chain.ark)).hexdigest() == ARK_PINS[product]
    chain.ark.verify_directly_issued_by(chain.ark)
    chain.intermediate.verify_directly_issued_by(chain.ark)
    assert chain.ark.subject.rfc4514_string().startswith(f"CN=ARK-{product.value.title()},")
    prefix = "SEV-VLEK-" if kind is EndorsementKind.VLEK else "SEV-"
    cn = f"CN={prefix}{product.value.title()},"
    assert chain.intermediate.subject.rfc4514_string().startswith(cn)


@pytest.mark.parametrize(("product", "kind"), CHAINS)
def test_pinned_chain_equals_the_recorded_kds_cert_chain(
    product: Product, kind: EndorsementKind
) -> None:
    chain = pinned_chain(product, kind)
    recorded = x509.load_pem_x509_certificates(
        (VECTORS / KDS_CHAIN_FILES[product, kind]).read_bytes()
    )
    assert [der(c) for c in recorded] == [der(chain.intermediate), der(chain.ark)]


def test_milan_ark_pin_is_the_one_the_expected_outcomes_name() -> None:
    assert case_for("gosevguest_attestation.bin")["ark_sha256"] == ARK_MILAN_SHA256


@pytest.mark.parametrize(
    ("product", "kind"),
    [(Product.GENOA, EndorsementKind.VLEK), (Product.TURIN, EndorsementKind.VLEK)],
)
def test_chains_that_are_not_pinned_are_refused(product: Product, kind: EndorsementKind) -> None:
    with pytest.raises(EvidenceSignatureError, match="no pinned AMD chain for VLEK"):
        pinned_chain(product, kind)


def test_check_pin_accepts_the_pinned_bytes() -> None:
    check_pin(
        der(pinned_chain(Product.MILAN, EndorsementKind.VCEK).ark),
        sha256=ARK_MILAN_SHA256,
        name="ark",
    )


@pytest.mark.parametrize("tamper", ["flip", "truncate", "extend", "other-ark"])
def test_check_pin_refuses_tampered_bytes(tamper: str) -> None:
    good = der(pinned_chain(Product.MILAN, EndorsementKind.VCEK).ark)
    bad = {
        "flip": good[:100] + bytes([good[100] ^ 1]) + good[101:],
        "truncate": good[:-1],
        "extend": good + b"\x00",
        "other-ark": der(pinned_chain(Product.GENOA, EndorsementKind.VCEK).ark),
    }[tamper]
    with pytest.raises(PinnedRootError, match=r"ark_milan\.pem does not match its SHA-256 pin"):
        check_pin(bad, sha256=ARK_MILAN_SHA256, name="ark_milan.pem")


def test_a_shipped_file_replaced_by_another_certificate_is_refused() -> None:
    genoa_pem = ROOTS.joinpath("ark_genoa.pem").read_bytes()
    with pytest.raises(PinnedRootError, match="does not match"):
        pinned_certificate_from_pem(genoa_pem, sha256=ARK_MILAN_SHA256, name="ark_milan.pem")


@pytest.mark.parametrize(
    "pem", [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_a_shipped_file_that_is_not_a_certificate_is_refused(pem: bytes) -> None:
    with pytest.raises(PinnedRootError, match="not a PEM certificate"):
        pinned_certificate_from_pem(pem, sha256=ARK_MILAN_SHA256, name="ark_milan.pem")


def test_readme_lists_every_shipped_file_with_its_pin() -> None:
    readme = ROOTS.joinpath("README.md").read_text()
    shipped = sorted(p.name for p in ROOTS.iterdir() if p.name.endswith(".pem"))
    assert len(shipped) == 7
    for name in shipped:
        cert = x509.load_pem_x509_certificate(ROOTS.joinpath(name).read_bytes())
        digest = hashlib.sha256(der(cert)).hexdigest()
        assert f"| {name} |" in readme
        assert digest in readme
