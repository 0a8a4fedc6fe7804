"""Attested key release: the one place a bundle's data key leaves the custodian.

Rules:

* :func:`release_data_key` is the only function that hands out a data key (DEK); it takes an
  :class:`~modellease.attestation.AppraisalResult`, which only ``appraise`` makes, and refuses
  anything else (``TypeError``: a caller bug, never a user error);
* the DEK is sealed with HPKE base mode (RFC 9180; DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
  AES-256-GCM) to the appraised instance's KEM key, ``appraisal.kem_key``, which the TEE
  generated and bound into its evidence; nobody outside that TEE can open it;
* the HPKE ``info`` binds the release to one bundle, one instance and one lease::

      info = b"modellease/key-release/v1" || 0x00
             || RFC 8785 canonical JSON of {"bundle_id": B, "instance_id": I, "lease_id": L}

  e.g. ``modellease/key-release/v1\\x00{"bundle_id":"…","instance_id":"…","lease_id":"…"}``;
  the ids are checked against the message formats first, so the JSON is plain ASCII;
* releasing to a simulated (insecure) TEE works only because the lease's policy allowed it,
  and logs a warning every time;
* :func:`unwrap_data_key` is the node's inverse: it recomputes ``info`` from ids it trusts
  (the verified grant), never from the copy on the wire; every failure, whatever its cause
  (other instance's key, other bundle, instance or lease, modified or truncated bytes), is
  the one :class:`KeyUnwrapError`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import ClassVar, Final

from modellease._hazmat import AEAD_KEY_SIZE, HpkeOpenFailed, KemPrivateKey, hpke_open, hpke_seal
from modellease.attestation.appraise import AppraisalResult
from modellease.errors import InvalidInputError
from modellease.keys import DataKey, InstanceKemKey
from modellease.keys import data_key as as_data_key
from modellease.protocol import canonical_json
from modellease.protocol.messages import BUNDLE_ID_PATTERN, IDENTIFIER_PATTERN

log = logging.getLogger("modellease.custodian.key_release")

KEY_RELEASE_INFO_PREFIX: Final = b"modellease/key-release/v1\x00"

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_BUNDLE_ID = re.compile(BUNDLE_ID_PATTERN)


class KeyUnwrapError(InvalidInputError):
    """The wrapped data key did not open for this instance, bundle and lease (opaque).

    Defined here for now; to be moved into ``modellease.errors``.
    """

    reason = "key_unwrap_failed"

    MESSAGE: ClassVar[str] = (
        "the wrapped data key does not open: it was sealed to another instance key, for "
        "another bundle, instance or lease, or it was modified"
    )

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


@dataclass(frozen=True, slots=True, kw_only=True)
class WrappedKey:
    """A data key sealed to one instance: ``sealed`` is HPKE ``enc || ciphertext || tag``."""

    sealed: bytes
    info: bytes
    recipient: InstanceKemKey

    def __repr__(self) -> str:
        return f"WrappedKey(recipient={self.recipient.hex()}, {len(self.sealed)} bytes)"


def key_release_info(*, bundle_id: str, instance_id: str, lease_id: str) -> bytes:
    """The HPKE ``info`` for releasing ``bundle_id``'s key to one instance of one lease.

    Raises ``ValueError`` for an id that is not in its message format.
    """
    if not isinstance(bundle_id, str) or _BUNDLE_ID.fullmatch(bundle_id) is None:
        raise ValueError("bundle_id must be 32 lowercase hex digits")
    for name, value in (("instance_id", instance_id), ("lease_id", lease_id)):
        if not isinstance(value, str) or _IDENTIFIER.fullmatch(value) is None:
            raise ValueError(f"{name} must match {IDENTIFIER_PATTERN}")
    return KEY_RELEASE_INFO_PREFIX + canonical_json(
        {"bundle_id": bundle_id, "instance_id": instance_id, "lease_id": lease_id}
    )


def release_data_key(
    *,
    appraisal: AppraisalResult,
    data_key: DataKey,
    bundle_id: str,
    instance_id: str,
    lease_id: str,
) -> WrappedKey:
    """Seal ``data_key`` to the KEM key of the instance that ``appraisal`` verified."""
    if type(appraisal) is not AppraisalResult:
        raise TypeError("release_data_key needs the AppraisalResult that appraise() returned")
    if not isinstance(data_key, bytes) or len(data_key) != AEAD_KEY_SIZE:
        raise TypeError("data_key must be the bundle's 32-byte data key")
    info = key_release_info(bundle_id=bundle_id, instance_id=instance_id, lease_id=lease_id)
    if appraisal.insecure:
        log.warning(
            "INSECURE: releasing the data key of bundle %s to a simulated TEE (instance %s)",
            bundle_id,
            instance_id,
        )
    sealed = hpke_seal(appraisal.kem_key, data_key, info=info)
    return WrappedKey(sealed=sealed, info=info, recipient=appraisal.kem_key)


def unwrap_data_key(
    private_kem_key: KemPrivateKey,
    wrapped: bytes,
    *,
    bundle_id: str,
    instance_id: str,
    lease_id: str,
) -> DataKey:
    """Node side: open a wrapped data key with this instance's KEM private key."""
    info = key_release_info(bundle_id=bundle_id, instance_id=instance_id, lease_id=lease_id)
    try:
        plaintext = hpke_open(private_kem_key, wrapped, info=info)
    except HpkeOpenFailed:
        raise KeyUnwrapError from None
    if len(plaintext) != AEAD_KEY_SIZE:
        raise KeyUnwrapError
    return as_data_key(plaintext)
