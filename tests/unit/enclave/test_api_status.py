"""Every refusal maps to one HTTP status and keeps its stable reason."""

from __future__ import annotations

import pytest

from modellease.enclave import AllowanceExhaustedError
from modellease.enclave.api import status_of
from modellease.enclave.api_language import ModelNotFoundError
from modellease.enclave.engines import EngineStoppedError, InferenceInputError
from modellease.enclave.keeper import Admission
from modellease.enclave.runtime import ServiceRefusedError
from modellease.errors import LimitExceededError, ModelleaseError, StateError


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ServiceRefusedError(Admission(allowed=False, status=410, reason="killed")),
            (410, "killed"),
        ),
        (
            ServiceRefusedError(Admission(allowed=False, status=503, reason="paused")),
            (503, "paused"),
        ),
        (AllowanceExhaustedError("none left"), (429, "allowance_exhausted")),
        (ModelNotFoundError("gpt-4"), (404, "model_not_found")),
        (EngineStoppedError("closed"), (503, "engine_stopped")),
        (LimitExceededError("too big"), (413, "limit_exceeded")),
        (InferenceInputError("bad"), (400, "bad_inference_input")),
        (StateError("odd"), (500, "state")),
        (ModelleaseError("?"), (500, "error")),
    ],
)
def test_status_of(error: ModelleaseError, expected: tuple[int, str]) -> None:
    assert status_of(error) == expected
