"""Test and demo helpers shipped with modellease (real models, no mocks).

* :mod:`modellease.testing.digits` — builds the deterministic scikit-learn digits
  classifier as ONNX (needs the ``models`` extra: scikit-learn, skl2onnx, onnx).
"""

__all__: list[str] = []
