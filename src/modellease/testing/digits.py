"""A small real ONNX model: an MLP digit classifier, built deterministically.

The data is scikit-learn's bundled copy of the UCI "Optical Recognition of Handwritten
Digits" set (1797 8x8 images, CC BY 4.0), so nothing is downloaded. Training uses fixed
seeds and a fixed split; with the same library versions the ONNX bytes are identical on
every run. Input ``X``: float32[N, 64] (grey levels 0-16); outputs ``label``: int64[N] and
``probabilities``: float32[N, 10].

Run ``python -m modellease.testing.digits OUT.onnx`` to write the model to a file.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

SEED = 0
TEST_FRACTION = 0.25
HIDDEN_UNITS = 64
TARGET_OPSET = 17


@dataclass(frozen=True, slots=True)
class DigitsModel:
    """The ONNX bytes and the held-out split they were not trained on."""

    onnx: bytes
    test_inputs: npt.NDArray[np.float32]  # [N, 64]
    test_labels: npt.NDArray[np.int64]  # [N]


def build_digits_model() -> DigitsModel:
    """Train the MLP on a fixed split and convert it to ONNX (a few seconds on one core)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    data = load_digits()
    x = data.data.astype(np.float32)
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SEED, stratify=y
    )
    classifier = MLPClassifier(hidden_layer_sizes=(HIDDEN_UNITS,), max_iter=400, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(x_train, y_train)
    onnx_model = to_onnx(
        classifier,
        x_train[:1],
        options={id(classifier): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    return DigitsModel(onnx=onnx_model.SerializeToString(), test_inputs=x_test, test_labels=y_test)


def accuracy(
    onnx_bytes: bytes, inputs: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]
) -> float:
    """Run the ONNX model with onnxruntime, entirely from memory, and score it."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    predicted = session.run(["label"], {"X": inputs})[0]
    return float((predicted == labels).mean())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m modellease.testing.digits OUT.onnx", file=sys.stderr)
        return 2
    model = build_digits_model()
    Path(argv[0]).write_bytes(model.onnx)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
