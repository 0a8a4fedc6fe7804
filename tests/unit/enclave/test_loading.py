"""Loading a sealed language model: its memory file reserved ahead or not, the re-hash run
while llama.cpp loads, a model that is not the one the manifest names refused (engine
closed) even though every frame authenticates, and no memory file left open on any path."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest

from modellease.bundle import BundleReader, seal_stream
from modellease.bundle.manifest import ModelInfo
from modellease.enclave import loading
from modellease.enclave.engines.llama import LlamaEngine
from modellease.enclave.loading import load_engine, reserved_memory
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


def open_fds() -> set[str]:
    return {fd.name for fd in Path("/proc/self/fd").iterdir()}


def test_memory_reserved_ahead_is_the_one_loaded(
    sealed_smollm2: tuple[bytes, bytes, dict[str, object]],
) -> None:
    blob, _, _ = sealed_smollm2
    before = open_fds()
    with open_reader(blob) as reader, reserved_memory(reader.manifest.model) as memory:
        assert memory is not None
        engine = load_engine(reader, data_key=data_key(KEY), memory=memory, context=256)
    with pytest.raises(RuntimeError, match="already taken"):
        memory.take()
    assert open_fds() == before  # the descriptor went to llama.cpp, which mapped it
    maps = Path("/proc/self/maps").read_text()
    assert "/memfd:modellease-model (deleted)" in maps
    engine.close()
    assert "/memfd:modellease-model" not in Path("/proc/self/maps").read_text()


def test_reserved_memory_not_taken_is_freed(
    sealed_smollm2: tuple[bytes, bytes, dict[str, object]],
) -> None:
    """A refusal between reserving and loading (e.g. enrolment refused) frees the memory."""
    blob, _, _ = sealed_smollm2
    before = open_fds()
    with (
        pytest.raises(ValueError, match="enrolment refused"),
        open_reader(blob) as reader,
        reserved_memory(reader.manifest.model),
    ):
        raise ValueError("enrolment refused")
    assert open_fds() <= before


def test_a_failed_reservation_surfaces_only_when_taken(
    monkeypatch: pytest.MonkeyPatch, sealed_smollm2: tuple[bytes, bytes, dict[str, object]]
) -> None:
    def no_memory(_size: int) -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(loading, "memory_file", no_memory)
    blob, _, _ = sealed_smollm2
    with open_reader(blob) as reader, reserved_memory(reader.manifest.model) as memory:
        assert memory is not None
        with pytest.raises(OSError, match="Cannot allocate memory"):
            memory.take()
    with open_reader(blob) as reader, reserved_memory(reader.manifest.model):
        pass  # never taken: released without raising


def test_a_tensor_model_reserves_nothing() -> None:
    info = ModelInfo(name="digits", version="1", format="onnx", size=10, sha256="00" * 32)
    with reserved_memory(info) as memory:
        assert memory is None


def test_a_wrong_data_key_leaves_no_memory_file_open(
    sealed_smollm2: tuple[bytes, bytes, dict[str, object]],
) -> None:
    blob, _, _ = sealed_smollm2
    before = open_fds()
    with open_reader(blob) as reader, pytest.raises(BundleIntegrityError):
        load_engine(reader, data_key=data_key(b"\x25" * 32), context=256, threads=1)
    assert open_fds() <= before
    assert "/memfd:modellease-model" not in Path("/proc/self/maps").read_text()
