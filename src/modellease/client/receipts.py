"""Checking a node's per-response receipts (:mod:`modellease.protocol.receipts`) against
what :func:`~.verify.verify_node` proved: right after an answer (:func:`check_response`,
which fetches the receipt's proof from the node), or offline later (:func:`check_receipt`
on a saved :class:`~modellease.protocol.receipts.ReceiptProof`).

A receipt that passes says: the instance whose key the verified evidence binds (so: that
TEE, that measurement) answered exactly this request with exactly this response, using this
model under this lease, and charged this many units. It says nothing about prompts or
answers beyond their hashes, and nothing at all for a node whose evidence was ``insecure``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from modellease.client.pinned import pinned_client
from modellease.client.verify import VerifiedNode
from modellease.errors import TransportError
from modellease.keys import InstanceSigningKey
from modellease.protocol import DocumentFormatError, SignedDocument
from modellease.protocol.receipts import (
    MAX_PROOF_JSON_SIZE,
    RECEIPT_HEADER,
    Receipt,
    ReceiptProof,
    parse_receipt_payload,
    receipt_from_header,
    split_stream,
    verify_receipt_proof,
)


class MissingReceiptError(DocumentFormatError):
    """The answer carries no receipt (no header; for a stream, no receipt line)."""

    reason = "receipt_missing"


@dataclass(frozen=True, slots=True)
class ReceiptSubject:
    """What a receipt must be about: a node's receipt key, lease, instance, model and bundle;
    and whether that node's evidence was ``insecure`` (simulated: its receipts prove
    nothing, whoever checks them)."""

    signing_public_key: InstanceSigningKey
    lease_id: str
    instance_id: str
    model_sha256: str
    bundle_id: str
    insecure: bool

    @classmethod
    def of(cls, node: VerifiedNode) -> ReceiptSubject:
        return cls(
            node.signing_public_key,
            node.lease_id,
            node.instance_id,
            node.model_sha256,
            node.bundle_id,
            node.insecure,
        )

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
                str(node["model"]["bundle_id"]),
                node["insecure"] is not False,  # anything but an explicit false: insecure
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a verified node description: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class CheckedReceipt:
    """A receipt that passed, and its proof: keep ``proof.to_json()`` to show it later."""

    receipt: Receipt
    proof: ReceiptProof


def check_receipt(
    subject: ReceiptSubject | VerifiedNode,
    proof: ReceiptProof,
    *,
    request: bytes | None = None,
    response: bytes | None = None,
) -> Receipt:
    """The receipt, only if a batch signed by the node's key covers it, it is about the
    node's lease, instance and model and, when given, about exactly these request and
    response bodies; else a typed error."""
    who = subject if isinstance(subject, ReceiptSubject) else ReceiptSubject.of(subject)
    return verify_receipt_proof(
        proof,
        instance_key=who.signing_public_key,
        lease_id=who.lease_id,
        instance_id=who.instance_id,
        model_sha256=who.model_sha256,
        bundle_id=who.bundle_id,
        request=request,
        response=response,
    )


def fetch_receipt_proof(
    node: VerifiedNode, header: str | bytes, *, http: httpx.Client | None = None
) -> ReceiptProof:
    """The proof of the receipt in an ``x-modellease-receipt`` header, from the node's
    ``/v1/receipts/{index}`` (not yet checked: :func:`check_receipt` does that). ``http``:
    a client for the node (by default a new :func:`~.pinned.pinned_client`)."""
    payload = receipt_from_header(header)
    index = parse_receipt_payload(payload).index
    url = f"{node.url}/v1/receipts/{index}"
    try:
        if http is None:
            with pinned_client(node) as own:
                status, content = _get_at_most(own, url, MAX_PROOF_JSON_SIZE)
        else:
            status, content = _get_at_most(http, url, MAX_PROOF_JSON_SIZE)
    except httpx.HTTPError as exc:
        raise TransportError(f"cannot fetch the proof of receipt {index}: {exc}") from None
    if content is None:
        raise DocumentFormatError(f"the proof of receipt {index} is too large")
    if status != httpx.codes.OK:
        raise TransportError(
            f"the node answered {status} for the proof of receipt {index}:"
            f" {content[:200].decode(errors='replace')}"
        )
    try:
        body = json.loads(content)
        return ReceiptProof(
            receipt=payload,
            batch=SignedDocument.model_validate(body["batch"]),
            path=body["path"],
        )
    except (ValueError, TypeError, KeyError, ValidationError) as exc:
        raise DocumentFormatError(f"not a receipt proof: {exc!r}"[:300]) from None


def _get_at_most(http: httpx.Client, url: str, limit: int) -> tuple[int, bytes | None]:
    """The status and body of ``GET url``; the body ``None`` if over ``limit`` bytes (the
    rest is not read)."""
    with http.stream("GET", url) as answer:
        content = b""
        for chunk in answer.iter_bytes():
            content += chunk
            if len(content) > limit:
                return answer.status_code, None
        return answer.status_code, content


def check_response(
    node: VerifiedNode, response: httpx.Response, *, http: httpx.Client | None = None
) -> CheckedReceipt:
    """Fetch and check the receipt of an ``httpx`` response that has been read (e.g.
    ``openai``'s raw response, or a streamed answer read whole) against the exact request
    it answered and the exact bytes received: the whole body for a whole answer, every byte
    before the receipt's line for a stream."""
    value: str | bytes | None = response.headers.get(RECEIPT_HEADER)
    body = response.content
    if value is None:
        streamed = split_stream(body) if _is_event_stream(response) else None
        if streamed is None:
            raise MissingReceiptError(f"the answer has no {RECEIPT_HEADER} header or line")
        body, value = streamed
    proof = fetch_receipt_proof(node, value, http=http)
    receipt = check_receipt(node, proof, request=response.request.content, response=body)
    return CheckedReceipt(receipt, proof)


def _is_event_stream(response: httpx.Response) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/event-stream")
