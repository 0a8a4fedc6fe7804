"""Every error modellease raises on purpose.

One root, three families. Each leaf carries a stable, machine-readable ``reason``
that the HTTP layer maps to a problem+json response and the CLI to an exit code
and a one-line message. Bugs in the caller raise ``TypeError``/``ValueError``/
``RuntimeError`` instead and are never caught here::

    ModelleaseError                     root (reason = "error")
    ├── InvalidInputError               untrusted or malformed input; CLI exit 3
    │   ├── NotABundleError             no bundle magic / shorter than a header
    │   ├── UnsupportedBundleVersionError
    │   ├── LimitExceededError          a declared size is above a named limit
    │   ├── BundleIntegrityError        anything else wrong with a bundle (opaque)
    │   └── ModelFileError              the model file to seal is empty/unknown/mismatched
    ├── StateError                      local state forbids the operation; CLI exit 1
    │   ├── HomeExistsError
    │   ├── HomeNotFoundError
    │   ├── KeyStoreLockedError         wrong master key or passphrase, or damaged store
    │   ├── UnknownBundleKeyError       no data key for this bundle in the key store
    │   └── OutputExistsError           refusing to overwrite a file
    └── TransportError                  I/O with a peer failed (network; later issues)

``BundleIntegrityError`` is deliberately opaque: a bundle that was truncated,
extended, reordered, spliced, re-signed, opened with the wrong data key or signed
by an untrusted custodian all give the same message, so a failed open teaches an
attacker nothing about which check it tripped.
"""

from __future__ import annotations

from typing import ClassVar


class ModelleaseError(Exception):
    """Root of every error modellease raises on purpose."""

    reason: ClassVar[str] = "error"


# --------------------------------------------------------------------------- input
class InvalidInputError(ModelleaseError):
    """Untrusted or malformed input was refused; nothing was changed."""

    reason = "invalid_input"


class NotABundleError(InvalidInputError):
    """The file does not start with a modellease bundle header."""

    reason = "not_a_bundle"


class UnsupportedBundleVersionError(InvalidInputError):
    """The bundle header names a format version this release cannot read."""

    reason = "unsupported_bundle_version"


class LimitExceededError(InvalidInputError):
    """A declared size is larger than a named limit; refused before allocating."""

    reason = "limit_exceeded"


class BundleIntegrityError(InvalidInputError):
    """The bundle failed authentication. Opaque on purpose: see the module docstring."""

    reason = "bundle_integrity"

    MESSAGE: ClassVar[str] = (
        "bundle failed integrity checks: it was modified, truncated or extended, "
        "the data key is wrong, or it is not signed by a trusted custodian key"
    )

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class ModelFileError(InvalidInputError):
    """The model file given to ``seal`` cannot be sealed as asked."""

    reason = "model_file"


# --------------------------------------------------------------------------- state
class StateError(ModelleaseError):
    """Local state (custodian home, key store, output path) forbids the operation."""

    reason = "state"


class HomeExistsError(StateError):
    """``custodian init`` refuses to overwrite an existing custodian home."""

    reason = "home_exists"


class HomeNotFoundError(StateError):
    """No initialised custodian home at the given path."""

    reason = "home_not_found"


class KeyStoreLockedError(StateError):
    """The key store cannot be unlocked: wrong master key or passphrase, or damaged."""

    reason = "key_store_locked"


class UnknownBundleKeyError(StateError):
    """The key store holds no data key for the requested bundle id."""

    reason = "unknown_bundle_key"


class OutputExistsError(StateError):
    """Refusing to overwrite an existing output file."""

    reason = "output_exists"


# --------------------------------------------------------------------------- transport
class TransportError(ModelleaseError):
    """Talking to a peer failed (connection, timeout, unexpected status)."""

    reason = "transport"


__all__ = [
    "BundleIntegrityError",
    "HomeExistsError",
    "HomeNotFoundError",
    "InvalidInputError",
    "KeyStoreLockedError",
    "LimitExceededError",
    "ModelFileError",
    "ModelleaseError",
    "NotABundleError",
    "OutputExistsError",
    "StateError",
    "TransportError",
    "UnknownBundleKeyError",
    "UnsupportedBundleVersionError",
]
