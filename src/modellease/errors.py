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
    │   ├── ModelFileError              the model file to seal is empty/unknown/mismatched
    │   ├── PolicyError                 an appraisal policy is empty, contradictory or malformed
    │   └── AttestationError            evidence refused by appraisal; ``step`` says where
    │       ├── EvidenceFormatError     malformed evidence, claims or quote (``offset`` if known)
    │       ├── TeeNotAllowedError      the policy does not admit this TEE kind
    │       ├── SimulatedEvidenceError  simulated evidence without ``unsafe_allow_simulated``
    │       ├── NonceMismatchError      the claims carry another nonce than the verifier's
    │       ├── EvidenceSignatureError  a signature or certificate chain does not verify
    │       ├── CollateralError         collateral or certificates missing, expired, not yet valid
    │       ├── DebugRefusedError       the TEE runs in debug mode
    │       ├── TcbRejectedError        TCB status, level or advisories not accepted
    │       ├── MeasurementRejectedError a measurement or attribute is not in the policy
    │       └── BindingMismatchError    the report data is not the hash of the claims
    │
    │   Defined beside the rules they enforce (each with its own stable ``reason``):
    │   ├── custodian.ledger.LedgerError            budget refusals (usage, budget, lease state)
    │   ├── protocol.signed.SignedDocumentError     wrong payload type, signer, signature, format
    │   ├── protocol.messages.ReportChainError      report gap/replay/rollback, fork, counters down
    │   ├── custodian.key_release.KeyUnwrapError    a wrapped data key does not open
    │   ├── custodian.audit.AuditChainError         an exported audit log is broken (which entry)
    │   ├── custodian.auth.AuthenticationError      no valid bearer token (HTTP 401)
    │   ├── custodian.auth.PermissionDeniedError    the role may not do this (HTTP 403)
    │   ├── custodian.service.NonceRefusedError, UnknownLeaseError
    │   ├── custodian.renewal.UnknownReporterError  a report signed by no enrolled instance
    │   ├── enclave.keeper.GrantRefusedError        a grant replayed, rolled back or shrinking
    │   ├── enclave.keeper.NodeStoppedError         a grant after a kill or the hard expiry
    │   ├── enclave.meter.AllowanceExhaustedError   a request beyond the allowance (HTTP 429)
    │   └── cli.overseer.OverseerKeyError, OrderRefusedError
    ├── StateError                      local state forbids the operation; CLI exit 1
    │   ├── HomeExistsError
    │   ├── HomeNotFoundError
    │   ├── KeyStoreLockedError         wrong master key or passphrase, or damaged store
    │   ├── UnknownBundleKeyError       no data key for this bundle in the key store
    │   ├── AttesterUnavailableError    the TEE's attestation interface is missing or failed
    │   └── OutputExistsError           refusing to overwrite a file
    └── TransportError                  I/O with a peer failed
        └── enclave.wire.CustodianRefusedError  the custodian said no (status, its reason)

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


class PolicyError(InvalidInputError):
    """An appraisal policy is empty, contradictory or malformed: never a pass."""

    reason = "policy_invalid"


# --------------------------------------------------------------------------- attestation
class AttestationError(InvalidInputError):
    """Evidence was refused. ``step`` is the appraisal step that refused it, once known."""

    reason = "attestation_refused"

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class EvidenceFormatError(AttestationError):
    """Evidence, claims or a quote/report could not be parsed. ``offset`` locates binary errors."""

    reason = "evidence_malformed"

    def __init__(self, message: str, *, offset: int | None = None, step: str | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at byte {offset})", step=step)
        self.offset = offset


class TeeNotAllowedError(AttestationError):
    """The policy does not admit this kind of TEE."""

    reason = "tee_not_allowed"


class SimulatedEvidenceError(AttestationError):
    """Simulated (software) evidence, refused unless the policy says ``unsafe_allow_simulated``."""

    reason = "simulated_refused"


class NonceMismatchError(AttestationError):
    """The claims carry a nonce other than the one the verifier issued."""

    reason = "nonce_mismatch"


class EvidenceSignatureError(AttestationError):
    """A signature or certificate chain in the evidence does not verify to a pinned root."""

    reason = "evidence_signature"


class CollateralError(AttestationError):
    """Collateral or certificates are missing, expired or not yet valid at the given time."""

    reason = "collateral_invalid"


class DebugRefusedError(AttestationError):
    """The TEE runs with debugging enabled: its memory is open to the host. Always refused."""

    reason = "debug_refused"


class TcbRejectedError(AttestationError):
    """The platform's TCB status, level or advisories are not accepted by the policy."""

    reason = "tcb_rejected"


class MeasurementRejectedError(AttestationError):
    """A measurement or attribute of the TEE is not one the policy allows."""

    reason = "measurement_rejected"


class BindingMismatchError(AttestationError):
    """The report data is not the hash of the received claims (keys or nonce swapped)."""

    reason = "binding_mismatch"


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


class AttesterUnavailableError(StateError):
    """This machine's TEE attestation interface is absent, misconfigured or raced."""

    reason = "attester_unavailable"


class OutputExistsError(StateError):
    """Refusing to overwrite an existing output file."""

    reason = "output_exists"


# --------------------------------------------------------------------------- transport
class TransportError(ModelleaseError):
    """Talking to a peer failed (connection, timeout, unexpected status)."""

    reason = "transport"


__all__ = [
    "AttestationError",
    "AttesterUnavailableError",
    "BindingMismatchError",
    "BundleIntegrityError",
    "CollateralError",
    "DebugRefusedError",
    "EvidenceFormatError",
    "EvidenceSignatureError",
    "HomeExistsError",
    "HomeNotFoundError",
    "InvalidInputError",
    "KeyStoreLockedError",
    "LimitExceededError",
    "MeasurementRejectedError",
    "ModelFileError",
    "ModelleaseError",
    "NonceMismatchError",
    "NotABundleError",
    "OutputExistsError",
    "PolicyError",
    "SimulatedEvidenceError",
    "StateError",
    "TcbRejectedError",
    "TeeNotAllowedError",
    "TransportError",
    "UnknownBundleKeyError",
    "UnsupportedBundleVersionError",
]
