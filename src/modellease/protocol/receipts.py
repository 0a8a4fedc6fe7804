"""Per-response receipts: what a node signs about each answer it gives.

Rules:

* a receipt is a signed document (payload type ``application/vnd.modellease.receipt.v1+json``)
  signed by the **instance key**, the Ed25519 key the node's evidence binds to its TEE
  measurement; so a receipt that verifies under a verified node's key binds the answer to
  that measurement, that model and that lease;
* it carries hashes only: SHA-256 of the exact request body and of the exact response
  body, never their text; plus the model's SHA-256, the bundle, lease and instance ids, the
  units charged in the lease's unit, and the time;
* :func:`verify_receipt` checks, in order: the signature under the node's key, the subject
  (lease, instance, model) against what the consumer verified, then the two hashes against
  the bodies the consumer sent and received. Each has its own error.
"""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar, Final

from pydantic import BaseModel, ConfigDict

from modellease._hazmat import SigningKey
from modellease.errors import InvalidInputError
from modellease.keys import InstanceSigningKey, fingerprint
from modellease.protocol.envelope import pae
from modellease.protocol.messages import (
    BundleId,
    Count,
    Identifier,
    Sha256Hex,
    Timestamp,
    Unit,
    WrongSubjectError,
)
from modellease.protocol.signed import SignedDocument, open_document

RECEIPT_PAYLOAD_TYPE: Final = "application/vnd.modellease.receipt.v1+json"
RECEIPT_HEADER: Final = "x-modellease-receipt"


class ReceiptMismatchError(InvalidInputError):
    """A genuine receipt, but for another request or response than the one checked."""

    reason = "receipt_mismatch"


class Receipt(BaseModel):
    """Node → consumer, signed by the instance key: what was answered, by what, at what cost."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    PAYLOAD_TYPE: ClassVar[str] = RECEIPT_PAYLOAD_TYPE

    lease_id: Identifier
    instance_id: Identifier
    bundle_id: BundleId
    model_sha256: Sha256Hex
    request_sha256: Sha256Hex
    response_sha256: Sha256Hex
    units: Count
    unit: Unit
    issued_at: Timestamp


def body_sha256(body: bytes) -> str:
    """What a receipt records of a body: its SHA-256, hex."""
    return hashlib.sha256(body).hexdigest()


def receipt_payload(receipt: Receipt) -> bytes:
    """The receipt's canonical JSON, written directly: every field is a string on the wire
    (``units`` too), so sorted keys and compact separators are RFC 8785's form. A test holds
    this equal to ``canonical_json(receipt.model_dump(mode="json"))`` on generated receipts."""
    fields = receipt.model_dump()
    fields["units"] = str(fields["units"])
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_receipt(
    receipt: Receipt, *, signer: SigningKey, key_id: str | None = None
) -> SignedDocument:
    """Sign ``receipt`` with the instance key (``key_id``: its fingerprint, if known).

    One is made per answer, on the answer's path, so this skips the generic
    :func:`~modellease.protocol.signed.sign_document`'s parse-back check: a receipt is a
    strict model of strings, and a test proves :func:`verify_receipt` reads back every
    receipt signed here.
    """
    payload = receipt_payload(receipt)
    return SignedDocument.model_construct(
        payload_type=RECEIPT_PAYLOAD_TYPE,
        payload=payload,
        signature=signer.sign(pae(RECEIPT_PAYLOAD_TYPE, payload)),
        key_id=key_id or fingerprint(signer.public_bytes()),
    )


def verify_receipt(
    signed: SignedDocument,
    *,
    instance_key: InstanceSigningKey,
    lease_id: str,
    instance_id: str,
    model_sha256: str,
    request: bytes | None = None,
    response: bytes | None = None,
) -> Receipt:
    """The receipt, only if ``instance_key`` signed it for this lease, instance and model,
    and (when given) for exactly these request and response bodies."""
    receipt = open_document(
        signed, model=Receipt, payload_type=RECEIPT_PAYLOAD_TYPE, trusted_keys=[instance_key]
    )
    for field, expected in (
        ("lease_id", lease_id),
        ("instance_id", instance_id),
        ("model_sha256", model_sha256),
    ):
        if getattr(receipt, field) != expected:
            raise WrongSubjectError(
                f"the receipt is for {field} {getattr(receipt, field)!r}, expected {expected!r}"
            )
    if request is not None and receipt.request_sha256 != body_sha256(request):
        raise ReceiptMismatchError("the receipt is for another request body")
    if response is not None and receipt.response_sha256 != body_sha256(response):
        raise ReceiptMismatchError("the receipt is for another response body")
    return receipt
