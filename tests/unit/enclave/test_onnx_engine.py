"""The ONNX engine runs the real digits model from memory and refuses malformed requests."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from modellease.enclave.engines import EngineStoppedError, InferenceInputError, OnnxEngine
from modellease.enclave.engines.onnx import MAX_INPUT_ELEMENTS
from modellease.testing.digits import DigitsModel, build_digits_model


@pytest.fixture(scope="module")
def digits() -> DigitsModel:
    return build_digits_model()


@pytest.fixture
def engine(digits: DigitsModel) -> OnnxEngine:
    return OnnxEngine(digits.onnx)


def test_it_classifies_held_out_digits_from_memory(engine: OnnxEngine, digits: DigitsModel) -> None:
    assert [(i.name, i.element_type, i.shape) for i in engine.inputs] == [
        ("X", "tensor(float)", (None, 64))
    ]
    tensors = engine.check({"X": digits.test_inputs.tolist()})  # JSON-style nested lists
    assert engine.rows(tensors) == len(digits.test_labels) == 450
    out = engine.infer(tensors)
    assert set(out) == {"label", "probabilities"}
    assert out["probabilities"].shape == (450, 10)
    assert float((out["label"] == digits.test_labels).mean()) > 0.95


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({}, r"exactly the inputs \['X'\]"),
        ({"X": [[0.0] * 64], "Y": [1]}, r"exactly the inputs \['X'\]"),
        ({"X": [[0.0] * 63]}, "dimension 1 must be 64, not 63"),
        ({"X": [0.0] * 64}, r"must have shape \[None, 64\]"),
        ({"X": []}, r"must have shape \[None, 64\]"),
        ({"X": [["seven"] * 64]}, "is not a tensor\\(float\\)"),
        ({"X": [[0.0] * 64, [0.0] * 3]}, "is not a tensor\\(float\\)"),  # ragged
        ({"X": 3.0}, r"must have shape \[None, 64\]"),
    ],
)
def test_malformed_requests_are_refused_before_running(
    engine: OnnxEngine, request_: dict[str, object], message: str
) -> None:
    with pytest.raises(InferenceInputError, match=message) as refused:
        engine.check(request_)
    assert refused.value.reason == "bad_inference_input"


def test_oversized_requests_are_refused(engine: OnnxEngine) -> None:
    rows = MAX_INPUT_ELEMENTS // 64 + 1
    with pytest.raises(InferenceInputError, match="over"):
        engine.check({"X": np.zeros((rows, 64), dtype=np.float32)})


def test_not_a_model_and_a_closed_engine(engine: OnnxEngine) -> None:
    with pytest.raises(InferenceInputError, match="not an ONNX model"):
        OnnxEngine(b"\x00garbage")
    tensors = engine.check({"X": [[0.0] * 64]})
    engine.close()
    assert engine.closed
    with pytest.raises(EngineStoppedError, match="unloaded"):
        engine.infer(tensors)


def tiny_model(*inputs: tuple[str, int, list[object]]) -> bytes:
    """An ONNX graph passing each input through ``Identity`` (onnx.helper, opset 17)."""
    nodes = [helper.make_node("Identity", [name], [f"{name}_out"]) for name, _, _ in inputs]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(name, kind, shape) for name, kind, shape in inputs],
        [helper.make_tensor_value_info(f"{name}_out", kind, shape) for name, kind, shape in inputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_inputs_must_share_their_rows() -> None:
    engine = OnnxEngine(
        tiny_model(("A", TensorProto.FLOAT, ["n", 2]), ("B", TensorProto.INT64, ["n"]))
    )
    assert [i.shape for i in engine.inputs] == [(None, 2), (None,)]
    ok = engine.check({"A": [[1, 2], [3, 4]], "B": [5, 6]})
    assert engine.infer(ok)["B_out"].tolist() == [5, 6]
    with pytest.raises(InferenceInputError, match="same number of rows"):
        engine.check({"A": [[1, 2], [3, 4]], "B": [5]})


def test_models_with_inputs_we_cannot_check_are_refused() -> None:
    with pytest.raises(InferenceInputError, match=r"unsupported element types: \['S'\]"):
        OnnxEngine(tiny_model(("S", TensorProto.STRING, ["n"])))
