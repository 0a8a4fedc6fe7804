"""The ONNX engine: a tensor model run by onnxruntime, loaded from bytes in memory.

Rules:

* the model is given as bytes, never as a path: plaintext weights never touch disk;
  onnxruntime keeps its own copy until :meth:`OnnxEngine.close`, which drops it (best
  effort: Python cannot wipe what a library allocated);
* a request names exactly the model's inputs; every input is converted to the element type
  the model declares and checked against its rank and fixed dimensions, all inputs share one
  batch (first) dimension of at least one row, and the total size is capped
  (``MAX_INPUT_ELEMENTS``) before anything runs; any mismatch is an
  :class:`InferenceInputError` naming the input;
* :meth:`OnnxEngine.rows` is the request's size in rows, for leases metered in rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from modellease.enclave.engines.stopped import EngineStoppedError
from modellease.errors import InvalidInputError

MAX_INPUT_ELEMENTS = 16 * 1024 * 1024  # numbers in one request, all inputs together
_ELEMENT_TYPES: dict[str, npt.DTypeLike] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}

Tensor = npt.NDArray[Any]


class InferenceInputError(InvalidInputError):
    """A request's tensors do not match the model's inputs (name, type, shape or size)."""

    reason = "bad_inference_input"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output as the model declares it; ``None`` marks a free dimension."""

    name: str
    element_type: str  # onnxruntime's spelling, e.g. "tensor(float)"
    shape: tuple[int | None, ...]


def _spec(arg: Any) -> TensorSpec:  # noqa: ANN401 - onnxruntime's NodeArg
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(name=arg.name, element_type=arg.type, shape=shape)


class OnnxEngine:
    """An ONNX model held in memory by onnxruntime, with its inputs checked per request."""

    def __init__(self, model: bytes) -> None:
        try:
            self._session: ort.InferenceSession | None = ort.InferenceSession(
                model, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own unexported types
            raise InferenceInputError(f"not an ONNX model onnxruntime can load: {exc}") from None
        self.inputs = tuple(_spec(a) for a in self._session.get_inputs())
        self.outputs = tuple(_spec(a) for a in self._session.get_outputs())
        unsupported = [i.name for i in self.inputs if i.element_type not in _ELEMENT_TYPES]
        if unsupported:
            raise InferenceInputError(f"inputs of unsupported element types: {unsupported}")

    def check(self, request: Mapping[str, object]) -> dict[str, Tensor]:
        """Convert and check a request's tensors (nested lists or arrays) against the model."""
        names = {i.name for i in self.inputs}
        if set(request) != names:
            raise InferenceInputError(
                f"the model takes exactly the inputs {sorted(names)}, not {sorted(request)}"
            )
        tensors: dict[str, Tensor] = {}
        total = 0
        for spec in self.inputs:
            tensor = self._convert(spec, request[spec.name])
            total += tensor.size
            if total > MAX_INPUT_ELEMENTS:
                raise InferenceInputError(f"the request holds over {MAX_INPUT_ELEMENTS} numbers")
            tensors[spec.name] = tensor
        if len({t.shape[0] for t in tensors.values()}) != 1:
            raise InferenceInputError("all inputs must have the same number of rows")
        return tensors

    @staticmethod
    def _convert(spec: TensorSpec, value: object) -> Tensor:
        try:
            tensor = np.asarray(value, dtype=_ELEMENT_TYPES[spec.element_type])
        except (TypeError, ValueError, OverflowError) as exc:
            message = f"input {spec.name!r} is not a {spec.element_type}: {exc}"
            raise InferenceInputError(message) from None
        if tensor.ndim != len(spec.shape) or tensor.ndim == 0 or tensor.shape[0] < 1:
            raise InferenceInputError(
                f"input {spec.name!r} must have shape {list(spec.shape)} with at least one "
                f"row, not {list(tensor.shape)}"
            )
        for axis, (want, got) in enumerate(zip(spec.shape, tensor.shape, strict=True)):
            if want is not None and want != got:
                raise InferenceInputError(
                    f"input {spec.name!r} dimension {axis} must be {want}, not {got}"
                )
        return tensor

    @staticmethod
    def rows(tensors: Mapping[str, Tensor]) -> int:
        """The batch size of checked tensors."""
        return int(next(iter(tensors.values())).shape[0])

    def infer(self, tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Run the model on tensors :meth:`check` returned; every output, by name."""
        if self._session is None:
            raise EngineStoppedError("the model was unloaded")
        results = self._session.run(None, dict(tensors))
        return {spec.name: np.asarray(r) for spec, r in zip(self.outputs, results, strict=True)}

    def close(self) -> None:
        """Drop the session and with it onnxruntime's copy of the weights."""
        self._session = None

    @property
    def closed(self) -> bool:
        return self._session is None
