"""Loading a sealed language model: the re-hash runs while llama.cpp loads, and a model that
is not the one the manifest names is refused (engine closed) even though every frame
authenticates."""

from __future__ import annotations

import copy
import io

import pytest

from modellease.bundle import BundleReader, seal_stream
from modellease.enclave.engines.llama import LlamaEngine
from modellease.enclave.loading import load_engine
from modellease.errors import BundleIntegrityError
from modellease.keys import CustodianPublicKey, data_key
from modellease.testing.smollm import smollm2_path
from tests.conftest import FIXED_TIME, signer_from
from tests.unit.bundle.forge import forge

KEY = b"\x24" * 32


@pytest.fixture(scope="module")
def sealed_smollm2() -> tuple[bytes, bytes, dict[str, object]]:
    model = smollm2_path().read_bytes()
    out = io.BytesIO()
    sealed = seal_stream(
        io.BytesIO(model),
        out,
        signer=signer_from(1),
        key=data_key(KEY),
        bundle_id="5e" * 16,
        created_at=FIXED_TIME,
        name="smollm2",
        version="1",
        model_format="gguf",
        provenance={},
    )
    return out.getvalue(), model, sealed.manifest.model_dump(mode="json")


def open_reader(blob: bytes) -> BundleReader:
    trusted = [CustodianPublicKey(signer_from(1).public_bytes())]
    return BundleReader.open(io.BytesIO(blob), trusted_custodians=trusted)


def test_an_honest_bundle_loads(sealed_smollm2: tuple[bytes, bytes, dict[str, object]]) -> None:
    blob, _, _ = sealed_smollm2
    with open_reader(blob) as reader:
        engine = load_engine(reader, data_key=data_key(KEY), context=256, threads=1)
    assert isinstance(engine, LlamaEngine)
    assert not engine.closed
    engine.close()


def test_a_manifest_naming_another_hash_is_refused_after_loading(
    sealed_smollm2: tuple[bytes, bytes, dict[str, object]],
) -> None:
    _, model, document = sealed_smollm2
    lying = copy.deepcopy(document)
    lying["model"]["sha256"] = "ab" * 32  # type: ignore[index]
    blob = forge(lying, model, signer=signer_from(1), key=KEY)
    with open_reader(blob) as reader, pytest.raises(BundleIntegrityError):
        load_engine(reader, data_key=data_key(KEY), context=256, threads=1)
