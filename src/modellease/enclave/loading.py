"""Decrypting a verified bundle straight into the engine that serves it.

Rules: plaintext goes to memory only (a ``bytearray`` for tensor models, a sealed memory
file for language models), every frame is authenticated as it is decrypted, and the whole
is checked against the manifest's SHA-256 before the engine is handed over (for a language
model, on the other core while llama.cpp loads it); our buffers are wiped as soon as the
engine holds the model, or on any failure. What is left is the engine's own copy, dropped
by ``close()`` (best effort: onnxruntime and llama.cpp free their memory without zeroing it,
and a ``bytes`` copy handed to onnxruntime cannot be wiped from Python; documented in
docs/threat-model.md).

A language model's memory file can be allocated ahead (:func:`reserved_memory`), while the
node enrols: allocating it costs about as much as decrypting into it, and needs no key.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from modellease.bundle import BundleReader
from modellease.bundle._io import wipe
from modellease.bundle.manifest import ModelInfo
from modellease.enclave.engines.llama import (
    DEFAULT_CONTEXT,
    LlamaEngine,
    memory_file,
    seal_memory_file,
)
from modellease.enclave.engines.onnx import OnnxEngine
from modellease.errors import ModelFileError
from modellease.keys import DataKey

Engine = OnnxEngine | LlamaEngine


class ReservedMemory:
    """A memory file for a model's plaintext, being allocated on another thread."""

    def __init__(self, allocation: Future[int]) -> None:
        self._allocation: Future[int] | None = allocation

    def take(self) -> int:
        """The allocated file, once ready; from now on the caller owns (and closes) it."""
        if self._allocation is None:
            raise RuntimeError("the reserved memory was already taken")
        allocation, self._allocation = self._allocation, None
        return allocation.result()

    def release(self) -> None:
        """Free the memory if it was never taken (waits for the allocation to end)."""
        if self._allocation is not None:
            allocation, self._allocation = self._allocation, None
            if allocation.exception() is None:
                os.close(allocation.result())


@contextmanager
def reserved_memory(model: ModelInfo) -> Iterator[ReservedMemory | None]:
    """Allocate ``model``'s memory file in the background (``None`` if it needs none).

    On leaving the block, memory that :func:`load_engine` did not take is freed.
    """
    if model.format != "gguf":
        yield None
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="modellease-reserve") as pool:
        reserved = ReservedMemory(pool.submit(memory_file, model.size))
        try:
            yield reserved
        finally:
            reserved.release()


def load_engine(
    reader: BundleReader,
    *,
    data_key: DataKey,
    memory: ReservedMemory | None = None,
    context: int = DEFAULT_CONTEXT,
    threads: int | None = None,
) -> Engine:
    """Decrypt ``reader``'s model with ``data_key`` and hand it to the engine for its format.

    ``memory``: a language model's memory file reserved ahead; allocated here if absent.
    """
    model = reader.manifest.model
    if model.format == "onnx":
        plaintext = bytearray(model.size)
        try:
            reader.decrypt_into(plaintext, data_key=data_key)
            return OnnxEngine(bytes(plaintext))
        finally:
            wipe(memoryview(plaintext))
    if model.format == "gguf":
        memfd = memory.take() if memory is not None else memory_file(model.size)
        try:
            # Every frame is authenticated while decrypting (written, never mapped here).
            reader.decrypt_to_file(memfd, data_key=data_key)
            seal_memory_file(memfd)
        except BaseException:
            os.close(memfd)
            raise
        # The re-hash against the manifest's SHA-256 (the model's identity) runs on the
        # other core while llama.cpp loads; the engine is handed over only if it matches.
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
