"""The llama engine: a GGUF language model run by llama.cpp (``llama-cpp-python``), loaded
from a sealed in-memory file.

Rules:

* the weights reach llama.cpp through an anonymous memory file (``os.memfd_create``),
  decrypted straight into it, sealed against any change of size or content, and opened by
  llama.cpp through ``/proc/self/fd/N``: plaintext weights never touch a disk. llama.cpp
  maps the memory file (no second copy); our descriptor is closed once the model is loaded,
  so the pages live exactly as long as llama.cpp's mapping (:meth:`LlamaEngine.close`).
  Memory-file pages can be swapped: run the TEE guest without swap (documented);
* one generation at a time (llama.cpp's context is not thread-safe): a lock, taken in the
  one thread that runs a generation from its first token to its last;
* tokens are counted by us, one per sampled token, so what the meter charges is exactly
  what ran; a generation stops at the end-of-generation token, at ``max_tokens``, or as
  soon as it is cancelled (client gone, or the engine closing after a kill);
* prompts are formatted with the chat template the GGUF file carries.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import functools
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modellease.enclave.engines.stopped import EngineStoppedError
from modellease.errors import InvalidInputError

MEMFD_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
DEFAULT_CONTEXT = 2048  # tokens of prompt plus completion


class PromptTooLongError(InvalidInputError):
    """The prompt and the completion asked for do not fit in the model's context."""

    reason = "context_length_exceeded"


@dataclass(slots=True)
class Generation:
    """What one generation did, filled in as it runs: what the meter settles."""

    tokens: int = 0  # sampled completion tokens, the end-of-generation token excluded
    finish_reason: str = "stop"  # "stop" (end of generation) or "length" (max_tokens)


@dataclass(frozen=True, slots=True)
class Sampling:
    """How tokens are drawn: temperature 0 is greedy (repeatable)."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


def memory_file(size: int) -> int:
    """A new anonymous memory file of ``size`` bytes, its (zeroed) pages allocated now.

    Allocating takes about as long as decrypting into it, and needs no key: the node does
    it while it enrols. Raises ``OSError`` if the memory cannot be had.
    """
    fd = os.memfd_create("modellease-model", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, size)
        os.posix_fallocate(fd, 0, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def seal_memory_file(fd: int) -> None:
    """Seal a filled memory file: its size and content can no longer change, nor its seals."""
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, MEMFD_SEALS)


class LlamaEngine:
    """A language model held by llama.cpp (see the module docstring)."""

    def __init__(
        self,
        memfd: int,
        *,
        name: str,
        context: int = DEFAULT_CONTEXT,
        threads: int | None = None,
    ) -> None:
        """Load the GGUF model in ``memfd``; the descriptor is closed here, loaded or not."""
        from llama_cpp import Llama, llama_vocab_is_eog  # noqa: PLC0415 - a native library

        try:
            self._llm: Any = Llama(
                model_path=f"/proc/self/fd/{memfd}",
                n_ctx=context,
                n_threads=threads or os.cpu_count() or 1,
                use_mmap=True,
                verbose=False,
            )
        except ValueError as exc:
            raise InvalidInputError(f"not a GGUF model llama.cpp can load: {exc}") from None
        finally:
            os.close(memfd)
        self.name = name
        self.context = context
        self.parameters = int(self._llm._model.n_params())
        self._eos = self._llm.token_eos()
        self._vocab = self._llm._model.vocab
        self._vocab_is_eog: Any = llama_vocab_is_eog
        self._lock = threading.Lock()
        self._closing = threading.Event()

    @functools.cached_property
    def _template(self) -> Any:  # noqa: ANN401 - llama_cpp's formatter
        """The model's chat template, compiled at the first chat (not on the boot's path)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # noqa: PLC0415

        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        special = self._llm.detokenize
        return Jinja2ChatFormatter(
            template=template,
            eos_token=special([self._eos], special=True).decode(errors="replace"),
            bos_token=special([self._llm.token_bos()], special=True).decode(errors="replace"),
            add_generation_prompt=True,
        )

    def _is_end(self, token: int) -> bool:
        """True for every end-of-generation token (end of turn, end of text, ...)."""
        return bool(self._vocab_is_eog(self._vocab, token))

    # ------------------------------------------------------------------ prompts
    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """The tokens of ``messages`` formatted with the model's chat template."""
        if self._template is None:
            raise InvalidInputError("this model has no chat template; use /v1/completions")
        text = self._template(messages=[dict(m) for m in messages]).prompt
        return self._tokens(text, add_bos=False)

    def text_prompt(self, prompt: str) -> list[int]:
        """The tokens of a plain completion prompt."""
        return self._tokens(prompt, add_bos=True)

    def _tokens(self, text: str, *, add_bos: bool) -> list[int]:
        if self.closed:
            raise EngineStoppedError("the model was unloaded")
        tokens: list[int] = self._llm.tokenize(text.encode(), add_bos=add_bos, special=True)
        return tokens

    def check_fits(self, prompt: Sequence[int], max_tokens: int) -> None:
        """Refuse a request whose prompt and completion cannot fit in the context."""
        if len(prompt) + max_tokens > self.context:
            raise PromptTooLongError(
                f"{len(prompt)} prompt tokens + max_tokens {max_tokens} exceed the model's "
                f"context of {self.context} tokens"
            )

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        prompt: Sequence[int],
        *,
        max_tokens: int,
        sampling: Sampling,
        cancel: threading.Event,
        into: Generation,
    ) -> Iterator[str]:
        """Yield the text as tokens are sampled; count them in ``into``.

        Run it to the end in one thread: it holds the engine's lock throughout.
        """
        with self._lock:
            if self.closed:
                raise EngineStoppedError("the model was unloaded")
            if sampling.seed is not None:
                self._llm.set_seed(sampling.seed)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            tokens = self._llm.generate(
                list(prompt),
                temp=sampling.temperature,
                top_p=sampling.top_p,
                top_k=0 if sampling.temperature > 0 else 1,
                min_p=0.0,
                repeat_penalty=1.0,
                reset=True,
            )
            try:
                while True:  # llama.cpp's generator never ends by itself
                    token = next(tokens)
                    if cancel.is_set() or self._closing.is_set():
                        raise EngineStoppedError("the generation was stopped")
                    if self._is_end(token):
                        break
                    into.tokens += 1
                    if piece := decoder.decode(self._llm.detokenize([token])):
                        yield piece
                    if into.tokens >= max_tokens:
                        into.finish_reason = "length"
                        break
            finally:
                tokens.close()
            if tail := decoder.decode(b"", final=True):
                yield tail  # an incomplete last character, replaced

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Stop any generation at its next token, then free the model and its memory file."""
        self._closing.set()
        with self._lock:
            llm, self._llm = self._llm, None
            if llm is not None:
                with contextlib.suppress(Exception):
                    llm.close()

    @property
    def closed(self) -> bool:
        return self._llm is None or self._closing.is_set()
