"""``POST /v1/infer``: named tensors in, named tensors out, for a tensor (ONNX) model.

Two body forms: JSON ``{"inputs": {"<name>": <nested list>}}``, and for large inputs a
NumPy ``.npz`` archive (``content-type: application/x-npz``; no pickles, sizes checked
before reading). The answer is JSON, or ``.npz`` when the request accepts it. The cost is
one unit per request, or per row, as the lease's unit says; the units charged are in the
``x-modellease-units`` header, and the answer's receipt in ``x-modellease-receipt``.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from modellease._http import read_body
from modellease.enclave.engines.onnx import MAX_INPUT_ELEMENTS, InferenceInputError, OnnxEngine
from modellease.enclave.pricing import onnx_parameters, price
from modellease.enclave.serving_context import ServingContext

MAX_JSON_BODY = 16 * 1024 * 1024
MAX_BINARY_BODY = 256 * 1024 * 1024
NPZ = "application/x-npz"
ZIP_ENTRY_OVERHEAD = 1024  # bytes of .npy header allowed per array


def add_tensor_routes(app: FastAPI, ctx: ServingContext, engine: OnnxEngine) -> None:
    """Register ``/v1/infer`` on ``app`` itself: a route of an included router costs an
    extra dispatch on every request."""
    runtime = ctx.runtime
    parameters = onnx_parameters(ctx.node.manifest.model.size)

    @app.post("/v1/infer")
    async def infer(request: Request) -> Response:
        binary = request.headers.get("content-type", "").startswith(NPZ)
        body = await read_body(request, limit=MAX_BINARY_BODY if binary else MAX_JSON_BODY)
        tensors = engine.check(read_npz(body) if binary else read_json_tensors(body))
        rows = engine.rows(tensors)
        reservation = ctx.begin(price(ctx.unit, items=rows, parameters=parameters))
        try:
            outputs = await asyncio.to_thread(engine.infer, tensors)
        except BaseException:
            runtime.abandon(reservation)
            raise
        runtime.finish(
            reservation,
            units=reservation.units,
            prompt_tokens=rows if ctx.unit == "tokens" else 0,
            flops=price("flops", items=rows, parameters=parameters),
        )
        ctx.after_request()
        headers = {"x-modellease-units": str(reservation.units)}
        if request.headers.get("accept", "").startswith(NPZ):
            out = io.BytesIO()
            np.savez(out, allow_pickle=False, **outputs)
            binary_answer = Response(out.getvalue(), media_type=NPZ, headers=headers)
            return ctx.stamp(binary_answer, request=body, units=reservation.units)
        answer = {
            "model": ctx.model_name,
            "outputs": {name: value.tolist() for name, value in outputs.items()},
            "usage": {"units": reservation.units, "rows": rows},
        }
        return ctx.stamp(
            JSONResponse(answer, headers=headers), request=body, units=reservation.units
        )


def read_json_tensors(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body)
    except ValueError:
        raise InferenceInputError("the body is not JSON") from None
    inputs = document.get("inputs") if isinstance(document, dict) else None
    if not isinstance(inputs, dict):
        raise InferenceInputError('the body must be {"inputs": {"<name>": <nested list>, ...}}')
    return inputs


def read_npz(body: bytes) -> dict[str, object]:
    """Tensors from a NumPy ``.npz`` archive: no pickles, sizes checked before reading."""
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            entries = archive.infolist()
        declared = sum(info.file_size for info in entries)
        if declared > MAX_INPUT_ELEMENTS * 8 + ZIP_ENTRY_OVERHEAD * len(entries):
            raise InferenceInputError(f"the archive unpacks to {declared} bytes, too many")
        with np.load(io.BytesIO(body), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InferenceInputError(f"not a NumPy .npz archive: {exc}") from None
