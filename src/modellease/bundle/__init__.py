"""The sealed model bundle: a signed manifest and the model encrypted in AEAD frames.

``seal_stream`` writes one, ``BundleReader``/``open_bundle`` verify and decrypt one into
memory, ``inspect_bundle`` reads what it says about itself. The byte layout is in
:mod:`modellease.bundle.format` and ``docs/bundle-format.md``.
"""

from modellease.bundle.detect import detect_format
from modellease.bundle.format import (
    DEFAULT_FRAME_SIZE,
    MAX_FRAME_SIZE,
    MAX_MANIFEST_SIZE,
    MAX_MODEL_SIZE,
    MIN_FRAME_SIZE,
    BundleHeader,
)
from modellease.bundle.inspect import BundleInspection, inspect_bundle
from modellease.bundle.manifest import Manifest, ModelFormat, ModelInfo
from modellease.bundle.reader import BundleReader, OpenedBundle, open_bundle
from modellease.bundle.seal import SealedBundle, new_bundle_id, new_data_key, seal_stream

__all__ = [
    "DEFAULT_FRAME_SIZE",
    "MAX_FRAME_SIZE",
    "MAX_MANIFEST_SIZE",
    "MAX_MODEL_SIZE",
    "MIN_FRAME_SIZE",
    "BundleHeader",
    "BundleInspection",
    "BundleReader",
    "Manifest",
    "ModelFormat",
    "ModelInfo",
    "OpenedBundle",
    "SealedBundle",
    "detect_format",
    "inspect_bundle",
    "new_bundle_id",
    "new_data_key",
    "open_bundle",
    "seal_stream",
]
