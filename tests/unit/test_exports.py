"""Each public package re-exports a sorted ``__all__`` of names that exist."""

from __future__ import annotations

import importlib

import pytest

from modellease import errors


def isort_key(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions: the order ruff's RUF022 keeps."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


PACKAGES = [
    "modellease",
    "modellease._hazmat",
    "modellease.attestation",
    "modellease.attestation.backends.sev_snp",
    "modellease.bundle",
    "modellease.errors",
    "modellease.keys",
    "modellease.protocol",
    "modellease.cli",
    "modellease.enclave",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported, key=isort_key)
    for symbol in exported:
        assert hasattr(module, symbol), symbol


def test_every_error_has_a_distinct_reason() -> None:
    classes = [getattr(errors, n) for n in errors.__all__]
    reasons = [c.reason for c in classes]
    assert len(set(reasons)) == len(reasons)
    assert all(issubclass(c, errors.ModelleaseError) for c in classes)
