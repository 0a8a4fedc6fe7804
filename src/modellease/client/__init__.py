"""The consumer's side: verify a node before sending it anything, then talk to it only
over connections pinned to its attested TLS key, and check the receipt of each answer
(:mod:`.verify`, :mod:`.pinned`, :mod:`.receipts`)."""

from modellease.client.pinned import openai_client, pinned_client, pinned_context, pinned_transport
from modellease.client.receipts import (
    CheckedReceipt,
    MissingReceiptError,
    ReceiptSubject,
    check_receipt,
    check_response,
    fetch_receipt_proof,
)
from modellease.client.verify import (
    ModelMismatchError,
    NodeResponseError,
    NodeVerificationError,
    NotHttpsError,
    TlsKeyMismatchError,
    UntrustedManifestError,
    VerifiedNode,
    verify_node,
)

__all__ = [
    "CheckedReceipt",
    "MissingReceiptError",
    "ModelMismatchError",
    "NodeResponseError",
    "NodeVerificationError",
    "NotHttpsError",
    "ReceiptSubject",
    "TlsKeyMismatchError",
    "UntrustedManifestError",
    "VerifiedNode",
    "check_receipt",
    "check_response",
    "fetch_receipt_proof",
    "openai_client",
    "pinned_client",
    "pinned_context",
    "pinned_transport",
    "verify_node",
]
