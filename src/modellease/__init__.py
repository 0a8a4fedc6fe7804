"""modellease: lease AI models under hardware-enforced rules.

The package is organised by job (see ``docs/architecture.md``):

* :mod:`modellease.bundle` — the sealed model bundle (format, seal, open).
* :mod:`modellease.custodian` — the custodian's home: identity key and data-key store.
* :mod:`modellease.protocol` — canonical JSON and the signing envelope.
* :mod:`modellease.errors` — every error raised on purpose, with a stable ``reason``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("modellease")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = ["__version__"]
