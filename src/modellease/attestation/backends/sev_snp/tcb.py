"""AMD EPYC product lines and the TCB_VERSION layout each one uses.

TCB_VERSION is 8 bytes; which byte holds which security patch level (SPL) depends on the
product (AMD pub. 56860, SEV-SNP Firmware ABI, "TCB_VERSION Structure", Table 3).

Rules:

* Milan and Genoa: byte 0 BOOT_LOADER, 1 TEE, 2..5 reserved, 6 SNP, 7 MICROCODE;
* Turin: byte 0 FMC, 1 BOOT_LOADER, 2 TEE, 3 SNP, 4..6 reserved, 7 MICROCODE;
* the product therefore comes first (from the endorsement certificate's productName),
  and only then can the components be read; ``fmc`` is ``None`` before Turin;
* reserved bytes are not interpreted here: the report signature covers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TCB_VERSION_SIZE = 8


class Product(StrEnum):
    """AMD EPYC product lines with SEV-SNP, named as in measurements (lowercase)."""

    MILAN = "milan"
    GENOA = "genoa"
    TURIN = "turin"


@dataclass(frozen=True, slots=True, kw_only=True)
class TcbComponents:
    """The security patch levels of one TCB_VERSION, each 0..255."""

    boot_loader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None  # Turin and later only


def tcb_components(raw: bytes, product: Product) -> TcbComponents:
    """Read the SPLs of an 8-byte TCB_VERSION laid out as ``product`` lays it out."""
    if len(raw) != TCB_VERSION_SIZE:
        raise ValueError(f"a TCB_VERSION is {TCB_VERSION_SIZE} bytes")
    if product is Product.TURIN:
        return TcbComponents(
            fmc=raw[0], boot_loader=raw[1], tee=raw[2], snp=raw[3], microcode=raw[7]
        )
    return TcbComponents(boot_loader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7])
