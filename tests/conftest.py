"""Shared fixtures: deterministic custodian keys and a helper that seals bytes in memory."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from modellease._hazmat import SigningKey
from modellease.bundle import SealedBundle, seal_stream
from modellease.keys import CustodianPublicKey, DataKey, data_key
from modellease.testing.digits import DigitsModel, build_digits_model
from tests.pgcluster import postgres_cluster

FIXED_TIME = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
SMALL_FRAME = 256


def signer_from(label: int) -> SigningKey:
    return SigningKey.from_seed(bytes([label]) * 32)


@dataclass(frozen=True)
class Sealed:
    """A bundle sealed in memory, with what is needed to open it."""

    blob: bytes
    sealed: SealedBundle
    custodian: CustodianPublicKey

    @property
    def key(self) -> DataKey:
        return self.sealed.data_key

    @property
    def frames_offset(self) -> int:
        return len(self.blob) - (
            self.sealed.manifest.model.size
            + 16 * -(-self.sealed.manifest.model.size // self.sealed.manifest.frame_size)
        )


SealFn = Callable[..., Sealed]


def seal_bytes(
    data: bytes,
    *,
    signer: SigningKey | None = None,
    key: bytes = b"\x42" * 32,
    bundle_id: str = "0123456789abcdef0123456789abcdef",
    frame_size: int = SMALL_FRAME,
    name: str = "test-model",
    model_format: str = "onnx",
    provenance: dict[str, object] | None = None,
) -> Sealed:
    signer = signer or signer_from(1)
    out = io.BytesIO()
    sealed = seal_stream(
        io.BytesIO(data),
        out,
        signer=signer,
        key=data_key(key),
        bundle_id=bundle_id,
        created_at=FIXED_TIME,
        name=name,
        version="1",
        model_format=model_format,  # type: ignore[arg-type]
        provenance=provenance if provenance is not None else {"test": True},  # type: ignore[arg-type]
        frame_size=frame_size,
    )
    return Sealed(out.getvalue(), sealed, CustodianPublicKey(signer.public_bytes()))


@pytest.fixture
def seal() -> SealFn:
    return seal_bytes


@pytest.fixture
def model_bytes() -> bytes:
    """Five frames of 256 bytes, the last one partial: 4 * 256 + 100 bytes."""
    return bytes((i * 7 + 3) % 251 for i in range(4 * SMALL_FRAME + 100))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback for the whole session (tests/pgcluster.py)."""
    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store test runs on SQLite and on PostgreSQL, each time on an empty database."""
    if request.param == "sqlite":
        yield f"sqlite+pysqlite:///{tmp_path / 'custodian.sqlite3'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def digits_model() -> DigitsModel:
    """The scikit-learn digits classifier as ONNX, trained once per session."""
    return build_digits_model()
