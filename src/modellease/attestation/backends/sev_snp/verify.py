"""Vendor verification of an AMD SEV-SNP report: signature chain to a pinned ARK, then facts.

Specs: AMD pub. 56860, "SEV Secure Nested Paging Firmware ABI Specification" ([ABI]) and
AMD pub. 57230, "Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface
Specification" ([KDS]). Table numbers move between revisions; the titles are cited.

Rules:

* endorsements hold exactly one DER certificate, under the key ``"vcek"`` for a VCEK or
  ``"vlek"`` for a VLEK; none is a :class:`~modellease.errors.CollateralError`, anything
  else (both, other keys) an :class:`~modellease.errors.EvidenceFormatError`;
* the key name is bound to the chain: a VCEK must chain to the product's ASK, a VLEK to its
  ASVK, and the report's SIGNER_INFO.SIGNING_KEY must name the same kind;
* the ARK self-signature, ARK -> ASK/ASVK -> endorsement signatures (RSASSA-PSS), the report
  signature (ECDSA P-384/SHA-384), CHIP_ID and REPORTED_TCB all have to hold; each failure is
  an :class:`~modellease.errors.EvidenceSignatureError`;
* all three certificates must be valid at ``now`` (inclusive bounds, RFC 5280), else a
  ``CollateralError``; ``now`` is a parameter and must be timezone-aware;
* debug guests are *not* refused here: ``debug`` is reported and the appraisal's policy step
  refuses it. Nothing unverified leaves :func:`verify_snp`;
* no revocation: AMD's CRLs are not consulted (nothing is fetched at verification time).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from modellease._hazmat import ct_equal, ecdsa_p384_sha384_verify
from modellease.attestation.backends.sev_snp.certs import (
    EndorsementKind,
    hardware_id,
    load_certificate,
    spl_components,
    unverified_product,
)
from modellease.attestation.backends.sev_snp.report import SigningKey, SnpReport
from modellease.attestation.backends.sev_snp.roots import AmdChain, pinned_chain
from modellease.attestation.backends.sev_snp.tcb import Product, TcbComponents
from modellease.attestation.evidence import TeeKind
from modellease.attestation.verified import Measurements, VerifiedQuote
from modellease.errors import CollateralError, EvidenceFormatError, EvidenceSignatureError

_SIGNING_KEYS = {EndorsementKind.VCEK: SigningKey.VCEK, EndorsementKind.VLEK: SigningKey.VLEK}


def verify_snp(quote: bytes, endorsements: Mapping[str, bytes], *, now: datetime) -> VerifiedQuote:
    """Verify an SEV-SNP ATTESTATION_REPORT to a pinned AMD root at ``now``.

    1. Parse the report ([ABI] "ATTESTATION_REPORT Structure"): :func:`SnpReport.from_bytes`.
    2. Take the one endorsement certificate, ``"vcek"`` or ``"vlek"``, and load its DER:
       :func:`select_endorsement`, :func:`~.certs.load_certificate`.
    3. Read its productName ([KDS] VCEK extensions, 1.3.6.1.4.1.3704.1.2) and take the pinned
       ARK and ASK/ASVK for that product and kind: :func:`~.roots.pinned_chain`.
    4. Verify the ARK's self-signature, the ASK/ASVK by the ARK, the endorsement by the
       ASK/ASVK (RSASSA-PSS; [KDS] certificate chain): :func:`check_chain`.
    5. All three certificates are valid at ``now``: :func:`check_validity`.
    6. SIGNER_INFO.SIGNING_KEY names the endorsement's kind and, for a VCEK, MASK_CHIP_KEY
       is clear ([ABI] "ATTESTATION_REPORT Structure", 0x48): :func:`check_signing_key`.
    7. The report signature, ECDSA P-384 with SHA-384 over bytes 0x000..0x29F, verifies with
       the endorsement key ([ABI] SIGNATURE_ALGO 1, SIGNATURE): :func:`check_report_signature`.
    8. VCEK: CHIP_ID equals the certificate's hwID (1.3.6.1.4.1.3704.1.4; 8 bytes on
       Turin), unless the platform masks CHIP_ID to zero: :func:`check_chip_id`.
    9. REPORTED_TCB ([ABI] "TCB_VERSION Structure") equals the certificate's SPL extensions
       (1.3.6.1.4.1.3704.1.3.x): :func:`check_reported_tcb`.
    10. Return the verified facts as a :class:`~modellease.attestation.verified.VerifiedQuote`.
    """
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    report = SnpReport.from_bytes(quote)
    kind, der = select_endorsement(endorsements)
    endorsement = load_certificate(der)
    product = unverified_product(endorsement)
    chain = pinned_chain(product, kind)
    check_chain(endorsement, chain)
    check_validity((chain.ark, chain.intermediate, endorsement), now=now)
    check_signing_key(report, kind)
    check_report_signature(report, endorsement)
    if kind is EndorsementKind.VCEK:
        check_chip_id(report.chip_id, hardware_id(endorsement, product), product)
    check_reported_tcb(
        report.reported_tcb_components(product), spl_components(endorsement, product)
    )
    return VerifiedQuote(
        tee=TeeKind.SEV_SNP,
        report_data=report.report_data,
        debug=report.debug_allowed,
        measurements=snp_measurements(report, product, kind),
        tcb_status=None,
        details=snp_details(report),
    )


def select_endorsement(endorsements: Mapping[str, bytes]) -> tuple[EndorsementKind, bytes]:
    """The one endorsement certificate and its kind, from its key name."""
    if not endorsements:
        raise CollateralError("no SEV-SNP endorsement certificate (expected 'vcek' or 'vlek')")
    names = sorted(endorsements)
    if len(names) != 1 or names[0] not in EndorsementKind.__members__.values():
        raise EvidenceFormatError(
            f"SEV-SNP endorsements must be exactly one of 'vcek' or 'vlek' ({len(names)} given)"
        )
    return EndorsementKind(names[0]), endorsements[names[0]]


def check_chain(endorsement: x509.Certificate, chain: AmdChain) -> None:
    """ARK self-signed, ARK -> ASK/ASVK -> endorsement, each signature and issuer name."""
    links = (
        (chain.ark, chain.ark, "the ARK's self-signature"),
        (chain.intermediate, chain.ark, "the ASK/ASVK signature by the ARK"),
        (endorsement, chain.intermediate, f"the {chain.kind.value.upper()} signature by AMD"),
    )
    for subject, issuer, what in links:
        try:
            subject.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, UnsupportedAlgorithm):
            raise EvidenceSignatureError(
                f"{what} does not verify to the pinned {chain.product.value} chain"
            ) from None


def check_validity(certs: tuple[x509.Certificate, ...], *, now: datetime) -> None:
    """Every certificate's validity period contains ``now``."""
    for cert in certs:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise CollateralError(
                f"certificate {cert.subject.rfc4514_string()!r} is not valid at {now.isoformat()}"
            )


def check_signing_key(report: SnpReport, kind: EndorsementKind) -> None:
    """The report says it was signed by a key of the endorsement's kind."""
    if report.signing_key is not _SIGNING_KEYS[kind]:
        raise EvidenceSignatureError(
            f"the report is signed by {report.signing_key.name}, the endorsement is a "
            f"{kind.value.upper()}"
        )
    if kind is EndorsementKind.VCEK and report.mask_chip_key:
        raise EvidenceSignatureError("MASK_CHIP_KEY is set: the VCEK cannot have signed the report")


def check_report_signature(report: SnpReport, endorsement: x509.Certificate) -> None:
    """ECDSA P-384/SHA-384 over the signed bytes, by the endorsement's key."""
    if not ecdsa_p384_sha384_verify(
        endorsement, r=report.signature_r, s=report.signature_s, message=report.signed_bytes
    ):
        raise EvidenceSignatureError("the report signature does not verify")


def check_chip_id(chip_id: bytes, hw_id: bytes, product: Product) -> None:
    """CHIP_ID names the chip the VCEK was issued to; all-zero means masked by the platform."""
    if not any(chip_id):
        return
    if not ct_equal(chip_id[: len(hw_id)], hw_id):
        raise EvidenceSignatureError(
            f"CHIP_ID is not the VCEK's hwID ({product.value} compares {len(hw_id)} bytes)"
        )


def check_reported_tcb(reported: TcbComponents, certified: TcbComponents) -> None:
    """REPORTED_TCB is exactly the TCB the endorsement was issued for."""
    if reported != certified:
        raise EvidenceSignatureError("REPORTED_TCB differs from the endorsement's SPL extensions")


def snp_measurements(report: SnpReport, product: Product, kind: EndorsementKind) -> Measurements:
    """The values a policy compares, named as the appraisal's reference checks expect."""
    tcb = report.reported_tcb_components(product)
    measurements: dict[str, str | int] = {
        "measurement": report.measurement.hex(),
        "host_data": report.host_data.hex(),
        "policy": report.policy,
        "vmpl": report.vmpl,
        "signing_key": kind.value,
        "guest_svn": report.guest_svn,
        "version": int(report.version),
        "family_id": report.family_id.hex(),
        "image_id": report.image_id.hex(),
        "id_key_digest": report.id_key_digest.hex(),
        "tcb_boot_loader": tcb.boot_loader,
        "tcb_tee": tcb.tee,
        "tcb_snp": tcb.snp,
        "tcb_microcode": tcb.microcode,
        "product": product.value,
    }
    if tcb.fmc is not None:
        measurements["tcb_fmc"] = tcb.fmc
    return measurements


def snp_details(report: SnpReport) -> dict[str, str]:
    """Informational values (not for policy): raw report bytes as lowercase hex."""
    return {
        "chip_id": report.chip_id.hex(),
        "reported_tcb": report.reported_tcb.hex(),
        "platform_info": report.platform_info.to_bytes(8, "little").hex(),
    }
