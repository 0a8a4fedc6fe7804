"""TCB_VERSION: which byte is which SPL depends on the product."""

from __future__ import annotations

import pytest

from modellease.attestation.backends.sev_snp import Product, TcbComponents, tcb_components

RAW = bytes([0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17])


@pytest.mark.parametrize("product", [Product.MILAN, Product.GENOA])
def test_milan_and_genoa_layout(product: Product) -> None:
    assert tcb_components(RAW, product) == TcbComponents(
        boot_loader=0x10, tee=0x11, snp=0x16, microcode=0x17, fmc=None
    )


def test_turin_layout_has_fmc_first() -> None:
    assert tcb_components(RAW, Product.TURIN) == TcbComponents(
        fmc=0x10, boot_loader=0x11, tee=0x12, snp=0x13, microcode=0x17
    )


def test_recorded_milan_tcb() -> None:
    # gosevguest_attestation.bin: REPORTED_TCB 0200000000000544 = bl 2, tee 0, snp 5, ucode 0x44
    assert tcb_components(bytes.fromhex("0200000000000544"), Product.MILAN) == TcbComponents(
        boot_loader=2, tee=0, snp=5, microcode=0x44
    )


@pytest.mark.parametrize("size", [0, 7, 9])
def test_wrong_size_is_a_caller_bug(size: int) -> None:
    with pytest.raises(ValueError, match="8 bytes"):
        tcb_components(bytes(size), Product.MILAN)
