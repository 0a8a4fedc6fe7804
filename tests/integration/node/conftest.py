"""What the node tests share: a real custodian on loopback (SQLite, hand-moved clock) and
the digits classifier sealed by it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modellease.testing.digits import DigitsModel
from tests.integration.custodian_server import Custodian, running_custodian
from tests.integration.node_harness import Sealed, seal


@pytest.fixture
def custodian(tmp_path: Path) -> Iterator[Custodian]:
    with running_custodian(tmp_path, f"sqlite+pysqlite:///{tmp_path / 'c.sqlite3'}") as c:
        yield c


@pytest.fixture
def sealed(custodian: Custodian, digits_model: DigitsModel, tmp_path: Path) -> Sealed:
    return seal(custodian, digits_model.onnx, tmp_path, name="digits", suffix=".onnx")
