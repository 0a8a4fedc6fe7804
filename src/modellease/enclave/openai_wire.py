"""The OpenAI-compatible request and response shapes the node serves (the subset it needs).

Requests are validated strictly where we act on a field (types, ranges, sizes) and unknown
fields are ignored, as OpenAI's own server does, so the official client works unchanged.
Features we do not offer are refused by name (``n`` above 1, tools) rather than ignored.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_MESSAGES = 256
MAX_TEXT = 64 * 1024  # characters of one message or prompt
DEFAULT_MAX_TOKENS = 256


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str = Field(max_length=256)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = Field(default=1, ge=1, le=1)
    tools: None = None

    @property
    def token_limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Literal["system", "user", "assistant", "developer"]
    content: str = Field(max_length=MAX_TEXT)


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)


class CompletionRequest(_Request):
    prompt: str = Field(max_length=MAX_TEXT)

    @model_validator(mode="before")
    @classmethod
    def _one_prompt(cls, data: Any) -> Any:  # noqa: ANN401 - raw JSON
        if isinstance(data, dict) and isinstance(data.get("prompt"), list):
            raise ValueError("one prompt per request (a list of prompts is not served)")  # noqa: TRY004 - pydantic reports ValueError
        return data


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_response(
    *, rid: str, model: str, text: str, finish: str, prompt: int, completion: int
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": usage(prompt, completion),
    }


def chat_chunk(
    *, rid: str, model: str, delta: dict[str, str], finish: str | None
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def completion_response(
    *, rid: str, model: str, text: str, finish: str | None, prompt: int, completion: int | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
    }
    if completion is not None:
        body["usage"] = usage(prompt, completion)
    return body


def usage_chunk(*, rid: str, model: str, kind: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": rid,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage(prompt, completion),
    }


def model_list(name: str, created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": created, "owned_by": "modellease"}],
    }
