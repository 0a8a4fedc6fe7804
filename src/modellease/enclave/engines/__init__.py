"""Inference engines behind one small interface: load from memory, check, infer, close."""

from modellease.enclave.engines.onnx import InferenceInputError, OnnxEngine, TensorSpec

__all__ = ["InferenceInputError", "OnnxEngine", "TensorSpec"]
