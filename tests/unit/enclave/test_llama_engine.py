"""The llama engine on the real SmolLM2 GGUF, loaded from a sealed memory file."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modellease.enclave.engines.llama import (
    MEMFD_SEALS,
    Generation,
    LlamaEngine,
    PromptTooLongError,
    Sampling,
    memory_file,
    seal_memory_file,
)
from modellease.enclave.engines.stopped import EngineStoppedError
from modellease.errors import InvalidInputError
from modellease.testing.smollm import smollm2_path

SPANISH = [{"role": "user", "content": "Say hello in Spanish."}]


def load(data: bytes) -> LlamaEngine:
    fd = memory_file(len(data))
    os.pwrite(fd, data, 0)
    seal_memory_file(fd)
    return LlamaEngine(fd, name="smollm2", context=512, threads=2)


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    loaded = load(smollm2_path().read_bytes())
    yield loaded
    loaded.close()


def run(engine: LlamaEngine, prompt: list[int], max_tokens: int) -> tuple[str, Generation]:
    into = Generation()
    text = "".join(
        engine.generate(
            prompt, max_tokens=max_tokens, sampling=Sampling(), cancel=threading.Event(), into=into
        )
    )
    return text, into


def open_fds() -> set[str]:
    return {fd.name for fd in Path("/proc/self/fd").iterdir()}


def test_the_memory_file_is_allocated_then_sealed() -> None:
    fd = memory_file(4)
    try:
        assert os.fstat(fd).st_size == 4
        assert os.fstat(fd).st_blocks > 0  # allocated now, not at first write
        os.pwrite(fd, b"GGUF", 0)
        seal_memory_file(fd)
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & MEMFD_SEALS == MEMFD_SEALS
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"x", 0)
        with pytest.raises(PermissionError):
            os.ftruncate(fd, 8)
        assert os.pread(fd, 8, 0) == b"GGUF"
    finally:
        os.close(fd)


def test_memory_that_cannot_be_had_leaves_nothing_open(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(_fd: int, _offset: int, _length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_memory)
    before = open_fds()
    with pytest.raises(OSError, match="No space left"):
        memory_file(4)
    assert open_fds() <= before


def test_not_a_gguf_model_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="not a GGUF model"):
        load(b"GGUF" + b"\x00" * 64)


def test_greedy_generation_is_repeatable_and_counts_every_token(engine: LlamaEngine) -> None:
    prompt = engine.chat_prompt([{"role": "user", "content": "Write a haiku about the sea."}])
    first, counted = run(engine, prompt, 40)
    again, _ = run(engine, prompt, 40)
    assert first == again
    assert "sea" in first.lower()
    assert 0 < counted.tokens <= 40
    assert counted.finish_reason == "stop"  # the haiku ends before 40 tokens


def test_a_character_cut_by_max_tokens_is_replaced_not_lost(engine: LlamaEngine) -> None:
    text, counted = run(engine, engine.chat_prompt(SPANISH), 48)
    assert counted.finish_reason == "length"
    assert counted.tokens == 48
    assert text.endswith("\ufffd")  # the last emoji's bytes were cut by max_tokens


def test_a_cancelled_generation_stops_at_its_next_token(engine: LlamaEngine) -> None:
    cancel, into = threading.Event(), Generation()
    pieces = engine.generate(
        engine.text_prompt("Once upon a time"),
        max_tokens=100,
        sampling=Sampling(),
        cancel=cancel,
        into=into,
    )
    next(pieces)
    cancel.set()
    with pytest.raises(EngineStoppedError):
        list(pieces)
    assert into.tokens == 1


def test_a_prompt_too_long_for_the_context_is_refused(engine: LlamaEngine) -> None:
    with pytest.raises(PromptTooLongError, match="context of 512"):
        engine.check_fits(engine.text_prompt("sea " * 400), 200)


def test_a_model_without_a_chat_template_serves_completions_only() -> None:
    """SmolLM2 with its template's metadata key renamed (same length: the file stays valid),
    as a base model's GGUF would be."""
    data = smollm2_path().read_bytes()
    assert data.count(b"tokenizer.chat_template") == 1
    base = load(data.replace(b"tokenizer.chat_template", b"tokenizer.chat_templatx"))
    try:
        with pytest.raises(InvalidInputError, match="no chat template"):
            base.chat_prompt(SPANISH)
        assert base.text_prompt("Hello")  # plain completions still work
    finally:
        base.close()


def test_a_closed_engine_refuses_everything() -> None:
    closing = load(smollm2_path().read_bytes())
    closing.close()
    closing.close()  # idempotent
    assert closing.closed
    with pytest.raises(EngineStoppedError):
        closing.text_prompt("hello")
    with pytest.raises(EngineStoppedError):
        run(closing, [1, 2, 3], 5)
