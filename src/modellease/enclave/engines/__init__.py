"""Inference engines behind one small interface: load from memory, check, infer, close."""

from modellease.enclave.engines.onnx import InferenceInputError, OnnxEngine, TensorSpec
from modellease.enclave.engines.stopped import EngineStoppedError

__all__ = ["EngineStoppedError", "InferenceInputError", "OnnxEngine", "TensorSpec"]
