"""The SEV-SNP backend re-exports its public names in a sorted ``__all__`` that resolves."""

from __future__ import annotations

import importlib

import pytest

from modellease.attestation.backends import sev_snp
from tests.unit.test_exports import isort_key

MODULES = ["certs", "report", "roots", "tcb", "verify"]


def test_all_is_sorted_and_resolves() -> None:
    assert sev_snp.__all__ == sorted(sev_snp.__all__, key=isort_key)
    for name in sev_snp.__all__:
        assert hasattr(sev_snp, name), name


@pytest.mark.parametrize("module", MODULES)
def test_every_public_name_of_every_module_is_exported(module: str) -> None:
    mod = importlib.import_module(f"modellease.attestation.backends.sev_snp.{module}")
    public = {
        name
        for name, value in vars(mod).items()
        if not name.startswith("_")
        and getattr(value, "__module__", mod.__name__) == mod.__name__
        and not isinstance(value, type(importlib))
        and name != "annotations"
    }
    assert public <= set(sev_snp.__all__), public - set(sev_snp.__all__)
