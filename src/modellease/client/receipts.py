"""Checking a node's per-response receipts (:mod:`modellease.protocol.receipts`), online
right after an answer or offline later, against what :func:`~.verify.verify_node` proved.

A receipt that passes says: the instance whose key the verified evidence binds (so: that
TEE, that measurement) answered exactly this request with exactly this response, using this
model under this lease, and charged this many units. It says nothing about prompts or
answers beyond their hashes, and nothing at all for a node whose evidence was ``insecure``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import httpx

from modellease.client.verify import VerifiedNode
from modellease.keys import InstanceSigningKey
from modellease.protocol import DocumentFormatError, SignedDocument
from modellease.protocol.receipts import RECEIPT_HEADER, Receipt, verify_receipt


class MissingReceiptError(DocumentFormatError):
    """The answer carries no receipt (a streamed answer never does)."""

    reason = "receipt_missing"


@dataclass(frozen=True, slots=True)
class ReceiptSubject:
    """What a receipt must be about: a node's receipt key, lease, instance and model."""

    signing_public_key: InstanceSigningKey
    lease_id: str
    instance_id: str
    model_sha256: str

    @classmethod
    def of(cls, node: VerifiedNode) -> ReceiptSubject:
        return cls(node.signing_public_key, node.lease_id, node.instance_id, node.model_sha256)

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> ReceiptSubject:
        """From ``modellease verify --json`` output (the whole document or its ``node``)."""
        node = summary.get("node", summary)
        try:
            return cls(
                InstanceSigningKey(bytes.fromhex(node["signing_public_key"])),
                str(node["lease_id"]),
                str(node["instance_id"]),
                str(node["model"]["sha256"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a verified node description: {exc!r}") from None


def parse_receipt(value: str | bytes) -> SignedDocument:
    """A receipt as carried in the ``x-modellease-receipt`` header (base64 of its JSON)."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DocumentFormatError("the receipt is not base64") from None
    return SignedDocument.from_json(raw)


def check_receipt(
    subject: ReceiptSubject | VerifiedNode,
    receipt: SignedDocument,
    *,
    request: bytes | None = None,
    response: bytes | None = None,
) -> Receipt:
    """The receipt, only if the node's key signed it for its lease, instance and model and,
    when given, for exactly these request and response bodies; else a typed error."""
    who = subject if isinstance(subject, ReceiptSubject) else ReceiptSubject.of(subject)
    return verify_receipt(
        receipt,
        instance_key=who.signing_public_key,
        lease_id=who.lease_id,
        instance_id=who.instance_id,
        model_sha256=who.model_sha256,
        request=request,
        response=response,
    )


def check_response(node: VerifiedNode, response: httpx.Response) -> Receipt:
    """Check the receipt of an ``httpx`` response (e.g. ``openai``'s raw response) against
    the exact request it answered and the exact body received."""
    value = response.headers.get(RECEIPT_HEADER)
    if value is None:
        raise MissingReceiptError(f"the answer has no {RECEIPT_HEADER} header")
    return check_receipt(
        node, parse_receipt(value), request=response.request.content, response=response.content
    )
