"""Decrypting a verified bundle straight into the engine that serves it.

Rules: plaintext goes to memory only (a ``bytearray`` for tensor models, a sealed memory
file for language models), every frame is authenticated as it is decrypted, and the whole
is checked against the manifest's SHA-256 before the engine is handed over (for a language
model, on the other core while llama.cpp loads it); our buffer is wiped as soon as the
engine holds the model, or on any failure. What is left
is the engine's own copy, dropped by ``close()`` (best effort: onnxruntime and
llama.cpp free their memory without zeroing it, and a ``bytes`` copy handed to
onnxruntime cannot be wiped from Python; documented in docs/threat-model.md).
"""

from __future__ import annotations

import mmap
from concurrent.futures import ThreadPoolExecutor

from modellease.bundle import BundleReader
from modellease.bundle._io import wipe
from modellease.enclave.engines.llama import DEFAULT_CONTEXT, LlamaEngine, sealed_memfd
from modellease.enclave.engines.onnx import OnnxEngine
from modellease.errors import ModelFileError
from modellease.keys import DataKey

Engine = OnnxEngine | LlamaEngine


def load_engine(
    reader: BundleReader,
    *,
    data_key: DataKey,
    context: int = DEFAULT_CONTEXT,
    threads: int | None = None,
) -> Engine:
    """Decrypt ``reader``'s model with ``data_key`` and hand it to the engine for its format."""
    model = reader.manifest.model
    if model.format == "onnx":
        plaintext = bytearray(model.size)
        try:
            reader.decrypt_into(plaintext, data_key=data_key)
            return OnnxEngine(bytes(plaintext))
        finally:
            wipe(memoryview(plaintext))
    if model.format == "gguf":
        # Every frame is authenticated while decrypting; the re-hash against the manifest's
        # SHA-256 (the model's identity) runs on the other core while llama.cpp loads, and
        # the engine is handed over only once it matches.
        memfd = sealed_memfd(
            model.size,
            lambda mapped: reader.decrypt_into(mapped, data_key=data_key, verify_digest=False),
        )
        with (
            mmap.mmap(memfd, model.size, mmap.MAP_SHARED, mmap.PROT_READ) as sealed,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="modellease-rehash") as pool,
        ):
            rehash = pool.submit(reader.check_plaintext, sealed)
            engine = LlamaEngine(memfd, name=model.name, context=context, threads=threads)
            try:
                rehash.result()
            except BaseException:
                engine.close()
                raise
        return engine
    raise ModelFileError(f"no engine serves {model.format} models yet (onnx and gguf do)")
