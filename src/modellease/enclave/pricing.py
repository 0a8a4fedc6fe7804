"""What a request costs in the lease's unit. Pure.

* ``requests``: 1 per request, whatever its size;
* ``tokens``: prompt plus completion tokens for a language model; rows for a tensor model
  (a row is its unit of work, as a token is a language model's);
* ``flops``: the estimated forward-pass FLOPs, 2 x parameters x tokens (or rows).

A tensor model's parameter count is estimated from its size as float32 weights
(:func:`onnx_parameters`): an estimate for telemetry and FLOP budgets, documented as such.
"""

from __future__ import annotations

from modellease.enclave.meter import estimated_flops

FLOAT32_BYTES = 4


def price(unit: str, *, items: int, parameters: int) -> int:
    """The cost of ``items`` tokens (or rows) in ``unit``; at least 1."""
    if items < 0:
        raise ValueError("a request cannot have a negative size")
    if unit == "requests":
        return 1
    if unit == "tokens":
        return max(items, 1)
    if unit == "flops":
        return max(estimated_flops(parameters, items), 1)
    raise ValueError(f"unknown unit {unit!r}")


def onnx_parameters(model_size: int) -> int:
    """Parameters of a tensor model, estimated from its size in bytes as float32 weights."""
    return max(model_size // FLOAT32_BYTES, 1)
