"""AMD SEV-SNP vendor verification: a report, its VCEK or VLEK, pinned AMD roots, no network.

* :mod:`.report` — the ATTESTATION_REPORT parser (:class:`SnpReport`), every byte accounted for;
* :mod:`.tcb` — product lines and their TCB_VERSION layouts;
* :mod:`.certs` — endorsement certificates and AMD's extensions;
* :mod:`.roots` — the pinned ARK/ASK/ASVK certificates shipped as package data;
* :mod:`.verify` — :func:`verify_snp`, the numbered verification steps.

The attester side (configfs-tsm) lives in :mod:`modellease.attestation.backends.tsm`.
"""

from modellease.attestation.backends.sev_snp.certs import (
    MAX_CERTIFICATE_SIZE,
    EndorsementKind,
    hardware_id,
    load_certificate,
    spl_components,
    unverified_product,
)
from modellease.attestation.backends.sev_snp.report import (
    POLICY_DEBUG,
    POLICY_MIGRATE_MA,
    POLICY_RESERVED_MUST_BE_ONE,
    POLICY_SINGLE_SOCKET,
    POLICY_SMT,
    REPORT_SIZE,
    SIGNED_SIZE,
    ReportVersion,
    SignatureAlgorithm,
    SigningKey,
    SnpReport,
)
from modellease.attestation.backends.sev_snp.roots import (
    ARK_GENOA_SHA256,
    ARK_MILAN_SHA256,
    ARK_TURIN_SHA256,
    ASK_GENOA_SHA256,
    ASK_MILAN_SHA256,
    ASK_TURIN_SHA256,
    ASVK_MILAN_SHA256,
    PINNED_CHAINS,
    AmdChain,
    PinnedRootError,
    check_pin,
    pinned_certificate_from_pem,
    pinned_chain,
)
from modellease.attestation.backends.sev_snp.tcb import (
    TCB_VERSION_SIZE,
    Product,
    TcbComponents,
    tcb_components,
)
from modellease.attestation.backends.sev_snp.verify import (
    check_chain,
    check_chip_id,
    check_report_signature,
    check_reported_tcb,
    check_signing_key,
    check_validity,
    select_endorsement,
    snp_details,
    snp_measurements,
    verify_snp,
)

__all__ = [
    "ARK_GENOA_SHA256",
    "ARK_MILAN_SHA256",
    "ARK_TURIN_SHA256",
    "ASK_GENOA_SHA256",
    "ASK_MILAN_SHA256",
    "ASK_TURIN_SHA256",
    "ASVK_MILAN_SHA256",
    "MAX_CERTIFICATE_SIZE",
    "PINNED_CHAINS",
    "POLICY_DEBUG",
    "POLICY_MIGRATE_MA",
    "POLICY_RESERVED_MUST_BE_ONE",
    "POLICY_SINGLE_SOCKET",
    "POLICY_SMT",
    "REPORT_SIZE",
    "SIGNED_SIZE",
    "TCB_VERSION_SIZE",
    "AmdChain",
    "EndorsementKind",
    "PinnedRootError",
    "Product",
    "ReportVersion",
    "SignatureAlgorithm",
    "SigningKey",
    "SnpReport",
    "TcbComponents",
    "check_chain",
    "check_chip_id",
    "check_pin",
    "check_report_signature",
    "check_reported_tcb",
    "check_signing_key",
    "check_validity",
    "hardware_id",
    "load_certificate",
    "pinned_certificate_from_pem",
    "pinned_chain",
    "select_endorsement",
    "snp_details",
    "snp_measurements",
    "spl_components",
    "tcb_components",
    "unverified_product",
    "verify_snp",
]
