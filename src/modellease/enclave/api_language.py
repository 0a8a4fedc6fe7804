"""OpenAI-compatible routes for a language (GGUF) model: ``/v1/models``,
``/v1/chat/completions`` and ``/v1/completions``, whole or streamed (server-sent events).

A request reserves its prompt tokens plus ``max_tokens`` (priced in the lease's unit)
before any token is generated, and settles what really ran: the prompt and the tokens
sampled, also when the client leaves early or the engine is stopped mid-way. The
generation runs in one worker thread from its first token to its last
(:func:`in_thread`); leaving early cancels it at its next token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncGenerator, Callable, Iterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from modellease._http import read_body
from modellease.enclave.engines.llama import Generation, LlamaEngine, Sampling
from modellease.enclave.engines.stopped import EngineStoppedError
from modellease.enclave.openai_wire import (
    ChatRequest,
    CompletionRequest,
    chat_chunk,
    chat_response,
    completion_response,
    model_list,
    new_id,
    usage_chunk,
)
from modellease.enclave.pricing import price
from modellease.enclave.serving_context import ServingContext
from modellease.errors import InvalidInputError
from modellease.protocol.receipts import STREAM_RECEIPT_PREFIX

MAX_JSON_BODY = 1024 * 1024
_END = object()


def add_language_routes(app: FastAPI, ctx: ServingContext, engine: LlamaEngine) -> None:
    """Register the OpenAI-compatible routes on ``app`` itself (no included router)."""
    created = int(ctx.node.manifest.created.timestamp())

    @app.get("/v1/models")
    async def models() -> JSONResponse:
        return JSONResponse(model_list(ctx.model_name, created))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await read_body(request, limit=MAX_JSON_BODY)
        parsed = ChatRequest.model_validate_json(body)
        _check_model(ctx, parsed)
        ctx.runtime.admit(now=ctx.now())  # refuse before touching the engine
        messages = [m.model_dump() for m in parsed.messages]
        prompt = await asyncio.to_thread(engine.chat_prompt, messages)
        return await Completion(ctx, engine, parsed, prompt, chat=True).respond(body)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await read_body(request, limit=MAX_JSON_BODY)
        parsed = CompletionRequest.model_validate_json(body)
        _check_model(ctx, parsed)
        ctx.runtime.admit(now=ctx.now())
        prompt = await asyncio.to_thread(engine.text_prompt, parsed.prompt)
        return await Completion(ctx, engine, parsed, prompt, chat=False).respond(body)


class ModelNotFoundError(InvalidInputError):
    """The request names a model this node does not serve."""

    reason = "model_not_found"


def _check_model(ctx: ServingContext, request: ChatRequest | CompletionRequest) -> None:
    if request.model != ctx.model_name:
        raise ModelNotFoundError(
            f"this node serves {ctx.model_name!r}, not {request.model!r} (see /v1/models)"
        )


class Completion:
    """One admitted, reserved generation, settled exactly once whatever happens."""

    def __init__(
        self,
        ctx: ServingContext,
        engine: LlamaEngine,
        request: ChatRequest | CompletionRequest,
        prompt: list[int],
        *,
        chat: bool,
    ) -> None:
        engine.check_fits(prompt, request.token_limit)
        self.ctx, self.engine, self.request = ctx, engine, request
        self.prompt, self.chat = prompt, chat
        cost = price(
            ctx.unit, items=len(prompt) + request.token_limit, parameters=engine.parameters
        )
        self.reservation = ctx.begin(cost)
        self.generation = Generation()
        self.cancel = threading.Event()
        self._settled = threading.Lock()
        self.rid = new_id("chatcmpl" if chat else "cmpl")
        self.charged = 0  # units, once settled
        self.failed = False  # a stream that ended on an error (no [DONE])

    def _run(self) -> Iterator[str]:
        sampling = Sampling(
            temperature=self.request.temperature, top_p=self.request.top_p, seed=self.request.seed
        )
        return self.engine.generate(
            self.prompt,
            max_tokens=self.request.token_limit,
            sampling=sampling,
            cancel=self.cancel,
            into=self.generation,
        )

    def settle(self) -> None:
        """Charge the prompt and the tokens sampled (never more than reserved); once."""
        if not self._settled.acquire(blocking=False):
            return
        tokens = len(self.prompt) + self.generation.tokens
        parameters = self.engine.parameters
        self.charged = min(
            price(self.ctx.unit, items=tokens, parameters=parameters), self.reservation.units
        )
        self.ctx.runtime.finish(
            self.reservation,
            units=self.charged,
            prompt_tokens=len(self.prompt),
            completion_tokens=self.generation.tokens,
            flops=price("flops", items=tokens, parameters=parameters),
        )
        self.ctx.after_request()

    async def respond(self, body: bytes) -> Response:
        """The answer, with its receipt: in a header for a whole answer, in the stream's
        last comment line for a stream (its headers leave before its body exists)."""
        if self.request.stream:
            return StreamingResponse(
                self._receipted(self._events(), request=body),
                media_type="text/event-stream",
                background=BackgroundTask(self.settle),  # in case the stream never started
            )
        try:
            text = "".join([piece async for piece in in_thread(self._run, self.cancel)])
        finally:
            self.settle()
        make = chat_response if self.chat else completion_response
        answer = JSONResponse(
            make(
                rid=self.rid,
                model=self.ctx.model_name,
                text=text,
                finish=self.generation.finish_reason,
                prompt=len(self.prompt),
                completion=self.generation.tokens,
            )
        )
        return self.ctx.stamp(answer, request=body, units=self.charged)

    def _chunk(self, text: str | None, finish: str | None) -> str:
        model = self.ctx.model_name
        if self.chat:
            delta = {} if text is None else {"content": text}
            body = chat_chunk(rid=self.rid, model=model, delta=delta, finish=finish)
        else:
            body = completion_response(
                rid=self.rid,
                model=model,
                text=text or "",
                finish=finish,
                prompt=len(self.prompt),
                completion=None,
            )
        return f"data: {json.dumps(body)}\n\n"

    async def _receipted(
        self, events: AsyncGenerator[str, None], *, request: bytes
    ) -> AsyncGenerator[str, None]:
        """``events``, then the receipt of every byte they made, as an SSE comment (which
        SSE clients ignore), then ``[DONE]`` unless the stream ended on an error."""
        sent = hashlib.sha256()
        try:
            async for event in events:
                sent.update(event.encode())
                yield event
        finally:
            await events.aclose()  # at once if the client left: it settles the request
        receipt = self.ctx.receipt(
            request=request, response_sha256=sent.hexdigest(), units=self.charged
        )
        yield f"{STREAM_RECEIPT_PREFIX.decode()}{receipt}\n\n"
        if not self.failed:
            yield "data: [DONE]\n\n"

    async def _events(self) -> AsyncGenerator[str, None]:
        pieces = in_thread(self._run, self.cancel)
        try:
            if self.chat:
                first = chat_chunk(
                    rid=self.rid,
                    model=self.ctx.model_name,
                    delta={"role": "assistant", "content": ""},
                    finish=None,
                )
                yield f"data: {json.dumps(first)}\n\n"
            async for piece in pieces:
                yield self._chunk(piece, None)
        except EngineStoppedError as exc:
            self.failed = True
            yield f"data: {json.dumps({'error': {'message': str(exc), 'type': exc.reason}})}\n\n"
            return
        finally:
            await pieces.aclose()
            self.settle()
        yield self._chunk(None, self.generation.finish_reason)
        if self.request.include_usage:
            kind = "chat.completion.chunk" if self.chat else "text_completion"
            body = usage_chunk(
                rid=self.rid,
                model=self.ctx.model_name,
                kind=kind,
                prompt=len(self.prompt),
                completion=self.generation.tokens,
            )
            yield f"data: {json.dumps(body)}\n\n"


async def in_thread(
    make: Callable[[], Iterator[str]], cancel: threading.Event
) -> AsyncGenerator[str, None]:
    """Run a generation to its end in one worker thread, yielding its pieces here.

    Leaving early (client gone, error) sets ``cancel`` and waits for the thread to stop at
    its next token, so the caller settles only once the work has really ended.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()

    def work() -> None:
        try:
            for piece in make():
                loop.call_soon_threadsafe(queue.put_nowait, piece)
            loop.call_soon_threadsafe(queue.put_nowait, _END)
        except BaseException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)

    thread = threading.Thread(target=work, name="modellease-generate", daemon=True)
    thread.start()
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield str(item)
    finally:
        cancel.set()
        await asyncio.to_thread(thread.join)
