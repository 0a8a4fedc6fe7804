"""Exhaustive mutation: every truncation and every single-byte flip is refused with a typed error.

For each recorded report: cut it at every offset, append a byte, and flip every byte
(xor 0x01). Every variant must raise EvidenceFormatError or EvidenceSignatureError,
never verify and never raise anything else. Flips outside the signed region must be
EvidenceFormatError (an unsigned byte changed), except inside the 48 significant bytes of
R and S, where the signature no longer verifies. The same holds for the endorsement
certificate's DER, where an expired/not-yet-valid outcome (CollateralError) is also typed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest

from modellease.attestation.backends.sev_snp import REPORT_SIZE, SIGNED_SIZE, verify_snp
from modellease.errors import CollateralError, EvidenceFormatError, EvidenceSignatureError
from tests.unit.attestation.sev_snp.snp_vectors import (
    CASE_IDS,
    CASES,
    endorsements_of,
    now_of,
    report_of,
)

R_SIGNIFICANT = range(0x2A0, 0x2A0 + 48)
S_SIGNIFICANT = range(0x2E8, 0x2E8 + 48)


def flips(data: bytes) -> Iterator[tuple[int, bytes]]:
    for offset in range(len(data)):
        yield offset, data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def outcome(
    quote: bytes, endorsements: Mapping[str, bytes], now: datetime
) -> type[BaseException] | None:
    """The typed refusal ``verify_snp`` gives, or None if it verified; anything else raises."""
    try:
        verify_snp(quote, endorsements, now=now)
    except (EvidenceFormatError, EvidenceSignatureError, CollateralError) as exc:
        return type(exc)
    return None


def expected_for_report_flip(offset: int) -> set[type[BaseException]]:
    if offset < SIGNED_SIZE:
        return {EvidenceFormatError, EvidenceSignatureError}
    if offset in R_SIGNIFICANT or offset in S_SIGNIFICANT:
        return {EvidenceSignatureError}
    return {EvidenceFormatError}


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_truncation_and_extension_of_the_report_is_refused(case: dict[str, Any]) -> None:
    data, endorsements, now = report_of(case), endorsements_of(case), now_of(case)
    bad = []
    for length in range(len(data)):
        got = outcome(data[:length], endorsements, now)
        if got is not EvidenceFormatError:
            bad.append((length, got))
    for extra in (b"\x00", b"\x01", data):
        got = outcome(data + extra, endorsements, now)
        if got is not EvidenceFormatError:
            bad.append((len(data) + len(extra), got))
    assert bad == []


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_byte_flip_of_the_report_is_refused(case: dict[str, Any]) -> None:
    data, endorsements, now = report_of(case), endorsements_of(case), now_of(case)
    assert len(data) == REPORT_SIZE
    bad = []
    for offset, mutated in flips(data):
        got = outcome(mutated, endorsements, now)
        if got not in expected_for_report_flip(offset):
            bad.append((hex(offset), got))
    assert bad == []


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_byte_flip_and_truncation_of_the_endorsement_is_refused(case: dict[str, Any]) -> None:
    data, now = report_of(case), now_of(case)
    ((key, der),) = endorsements_of(case).items()
    bad = []
    for offset, mutated in flips(der):
        if outcome(data, {key: mutated}, now) is None:
            bad.append(("flip", offset))
    for length in range(len(der)):
        if outcome(data, {key: der[:length]}, now) is None:
            bad.append(("cut", length))
    assert bad == []
