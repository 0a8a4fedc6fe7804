"""Per-response receipts: what a node states about each answer, and how one signature
covers many of them.

Rules:

* a :class:`Receipt` carries hashes only: SHA-256 of the exact request body and of the exact
  response body, never their text; plus the model's SHA-256, the bundle, lease and instance
  ids, the units charged in the lease's unit, the time, and its ``index``: receipts are
  numbered from 0 in the order the instance issued them;
* the answer carries its receipt at once, unsigned: it reached the consumer over the
  attested TLS channel, so the consumer knows it came from the node; to show it to anyone
  else it needs the receipt's **proof**;
* the node signs its receipts in batches: a :class:`ReceiptBatch` (payload type
  ``application/vnd.modellease.receipt-batch.v1+json``), signed by the **instance key**,
  names the first index and the number of receipts it covers and the RFC 9162 Merkle root
  over them; a receipt's leaf is ``PAE(RECEIPT_PAYLOAD_TYPE, canonical JSON)``, so a leaf
  can never be taken for another kind of data;
* a :class:`ReceiptProof` is the receipt, its signed batch and its inclusion path: it
  stands alone, and :func:`verify_receipt_proof` checks it offline, in order, each with its
  own error: the batch's signature under the node's key; the receipt's form; the subject
  (lease, instance, model, bundle) against what the consumer verified; the receipt's place in the
  batch (:class:`ReceiptNotInBatchError`); then the two hashes against the bodies the
  consumer sent and received (:class:`ReceiptMismatchError`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Final, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modellease.errors import InvalidInputError
from modellease.keys import InstanceSigningKey
from modellease.protocol.envelope import canonical_json, pae, parse_canonical_json
from modellease.protocol.merkle import leaf_hash, root_from_inclusion_path
from modellease.protocol.messages import (
    MAX_COUNT,
    SHA256_HEX_PATTERN,
    BundleId,
    Count,
    Identifier,
    Sha256Hex,
    Timestamp,
    Unit,
    check_timestamp,
    expect_subject,
)
from modellease.protocol.signed import (
    DocumentFormatError,
    SignedDocument,
    open_document,
)

RECEIPT_PAYLOAD_TYPE: Final = "application/vnd.modellease.receipt.v1+json"
RECEIPT_BATCH_PAYLOAD_TYPE: Final = "application/vnd.modellease.receipt-batch.v1+json"
RECEIPT_HEADER: Final = "x-modellease-receipt"
# a stream's receipt: its last comment line, ``: x-modellease-receipt <base64>``; SSE clients
# skip comment lines, and no data line can hold "\n\n:" (JSON escapes newlines)
STREAM_RECEIPT_PREFIX: Final = b": x-modellease-receipt "
_AFTER_RECEIPT: Final = (b"", b"data: [DONE]\n\n")  # [DONE], unless the stream failed
MAX_RECEIPT_SIZE: Final = 2048  # a receipt is about 450 bytes of JSON
MAX_PATH_LENGTH: Final = 64  # a tree of 2**64 leaves
MAX_PROOF_JSON_SIZE: Final = 16 * 1024


_STRICT: Final = ConfigDict(frozen=True, extra="forbid", strict=True)


class ReceiptMismatchError(InvalidInputError):
    """A genuine receipt, but for another request or response than the one checked."""

    reason = "receipt_mismatch"


class ReceiptNotInBatchError(InvalidInputError):
    """The inclusion path does not lead from the receipt to its signed batch's root."""

    reason = "receipt_not_in_batch"


class Receipt(BaseModel):
    """Node → consumer: what was answered, by what, at what cost (see the module rules)."""

    model_config = _STRICT

    lease_id: Identifier
    instance_id: Identifier
    index: Count
    bundle_id: BundleId
    model_sha256: Sha256Hex
    request_sha256: Sha256Hex
    response_sha256: Sha256Hex
    units: Count
    unit: Unit
    issued_at: Timestamp


class ReceiptBatch(BaseModel):
    """Signed by the instance key: receipts ``first`` to ``first + size - 1`` are the leaves
    of the Merkle tree with this ``root``."""

    model_config = _STRICT

    lease_id: Identifier
    instance_id: Identifier
    first: Count
    size: Count
    root: Sha256Hex
    issued_at: Timestamp

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.size < 1:
            raise ValueError("a batch covers at least one receipt")
        return self


class ReceiptProof(BaseModel):
    """A receipt (its canonical JSON), its signed batch and its inclusion path: the whole
    proof, checked offline by :func:`verify_receipt_proof`. Wire form: the canonical JSON
    object ``{"batch", "path", "receipt" (base64)}``."""

    model_config = _STRICT

    receipt: bytes
    batch: SignedDocument
    path: list[Sha256Hex] = Field(max_length=MAX_PATH_LENGTH)

    def to_json(self) -> bytes:
        return canonical_json(
            {
                "batch": json.loads(self.batch.to_json()),
                "path": self.path,
                "receipt": base64.b64encode(self.receipt).decode(),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> ReceiptProof:
        """Parse the wire form (nothing verified); any deviation is a format error."""
        if len(raw) > MAX_PROOF_JSON_SIZE:
            raise DocumentFormatError(f"a receipt proof is at most {MAX_PROOF_JSON_SIZE} bytes")
        try:
            fields = parse_canonical_json(raw)
            return cls(
                receipt=receipt_from_header(fields.pop("receipt")),
                batch=SignedDocument.model_validate(fields.pop("batch")),
                **fields,
            )
        except (ValueError, TypeError, KeyError, ValidationError) as exc:
            raise DocumentFormatError(f"not a receipt proof: {exc!r}"[:300]) from None


def body_sha256(body: bytes) -> str:
    """What a receipt records of a body: its SHA-256, hex."""
    return hashlib.sha256(body).hexdigest()


_SHA256_HEX: Final = re.compile(SHA256_HEX_PATTERN)
_UNITS: Final = frozenset(get_args(Unit))


class ReceiptWriter:
    """Writes the canonical JSON of one instance's receipts; it runs on every answer's path,
    so it fills a template instead of serialising a model.

    The fields fixed for the instance (lease, instance, bundle, model) are checked once, by
    building a :class:`Receipt` with them; the others are checked on every receipt against
    the same rules (hex SHA-256, a count, a unit, a timestamp). Every value that passes is
    a string of characters JSON never escapes, and the template lists the keys in sorted
    order with no spaces: RFC 8785's form. A test holds :meth:`write` equal to
    ``canonical_json(Receipt(...).model_dump(mode="json"))`` on generated receipts.
    """

    __slots__ = ("_head", "_middle", "_tail")

    def __init__(
        self, *, lease_id: str, instance_id: str, bundle_id: str, model_sha256: str
    ) -> None:
        Receipt(
            lease_id=lease_id,
            instance_id=instance_id,
            index=0,
            bundle_id=bundle_id,
            model_sha256=model_sha256,
            request_sha256=model_sha256,
            response_sha256=model_sha256,
            units=0,
            unit="requests",
            issued_at="2000-01-01T00:00:00Z",
        )  # a ValidationError if a fixed field is not what a receipt allows
        self._head = f'{{"bundle_id":"{bundle_id}","index":"'
        self._middle = f'","instance_id":"{instance_id}","issued_at":"'
        self._tail = f'","lease_id":"{lease_id}","model_sha256":"{model_sha256}"'

    def write(
        self,
        *,
        index: int,
        request_sha256: str,
        response_sha256: str,
        units: int,
        unit: str,
        issued_at: str,
    ) -> bytes:
        """The receipt's canonical JSON; ``ValueError`` if a value is not a receipt's."""
        for count in (index, units):
            if type(count) is not int or not 0 <= count <= MAX_COUNT:
                raise ValueError(f"{count!r} is not a count")
        for digest in (request_sha256, response_sha256):
            if type(digest) is not str or _SHA256_HEX.fullmatch(digest) is None:
                raise ValueError(f"{digest!r} is not a hex SHA-256")
        if unit not in _UNITS:
            raise ValueError(f"{unit!r} is not a unit")
        if type(issued_at) is not str:
            raise ValueError(f"{issued_at!r} is not a timestamp")
        check_timestamp(issued_at)
        return (
            f"{self._head}{index}{self._middle}{issued_at}{self._tail},"
            f'"request_sha256":"{request_sha256}","response_sha256":"{response_sha256}",'
            f'"unit":"{unit}","units":"{units}"}}'
        ).encode()


def receipt_leaf_hash(payload: bytes) -> bytes:
    """The Merkle leaf hash of a receipt's canonical JSON (see the module rules)."""
    return leaf_hash(pae(RECEIPT_PAYLOAD_TYPE, payload))


def receipt_header(payload: bytes) -> str:
    """The ``x-modellease-receipt`` header's value: the receipt's JSON in base64."""
    return base64.b64encode(payload).decode()


def receipt_from_header(value: str | bytes) -> bytes:
    """The receipt's JSON from a ``x-modellease-receipt`` header value (not yet checked)."""
    if len(value) > 4 * MAX_RECEIPT_SIZE // 3 + 4:
        raise DocumentFormatError(f"a receipt is at most {MAX_RECEIPT_SIZE} bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DocumentFormatError("the receipt is not base64") from None
    text = value.encode() if isinstance(value, str) else value
    if base64.b64encode(raw) != text:
        raise DocumentFormatError("the receipt is not canonical base64")
    return raw


def split_stream(stream: bytes) -> tuple[bytes, bytes] | None:
    """A stream's body as its receipt covers it (every byte before the receipt's line) and
    the receipt's base64 value; ``None`` if the stream carries no receipt, or anything but
    ``data: [DONE]`` after it (the receipt covers the answer: nothing may follow it)."""
    at = stream.find(b"\n\n" + STREAM_RECEIPT_PREFIX)
    if at < 0:
        return None
    covered, rest = stream[: at + 2], stream[at + 2 + len(STREAM_RECEIPT_PREFIX) :]
    value, ended, after = rest.partition(b"\n\n")
    if not ended or after not in _AFTER_RECEIPT or b"\n" in value:
        return None
    return covered, value


def parse_receipt_payload(payload: bytes) -> Receipt:
    """The receipt that ``payload`` (canonical JSON) states; nothing about who stated it."""
    if len(payload) > MAX_RECEIPT_SIZE:
        raise DocumentFormatError(f"a receipt is at most {MAX_RECEIPT_SIZE} bytes")
    try:
        return Receipt.model_validate(parse_canonical_json(payload))
    except (ValueError, ValidationError) as exc:
        raise DocumentFormatError(f"not a receipt: {exc!r}"[:300]) from None


def verify_receipt_proof(
    proof: ReceiptProof,
    *,
    instance_key: InstanceSigningKey,
    lease_id: str,
    instance_id: str,
    model_sha256: str,
    bundle_id: str,
    request: bytes | None = None,
    response: bytes | None = None,
) -> Receipt:
    """The receipt, only if a batch signed by ``instance_key`` covers it, it is about this
    lease, instance, model and bundle, and (when given) about exactly these request and
    response bodies (see the module rules for the order of the checks)."""
    batch = open_document(
        proof.batch,
        model=ReceiptBatch,
        payload_type=RECEIPT_BATCH_PAYLOAD_TYPE,
        trusted_keys=[instance_key],
    )
    receipt = parse_receipt_payload(proof.receipt)
    instance = {"lease_id": lease_id, "instance_id": instance_id}
    for field, value in instance.items():
        expect_subject("receipt batch", field, getattr(batch, field), value)
    for field, value in (instance | {"model_sha256": model_sha256, "bundle_id": bundle_id}).items():
        expect_subject("receipt", field, getattr(receipt, field), value)
    root = root_from_inclusion_path(
        receipt_leaf_hash(proof.receipt),
        receipt.index - batch.first,
        batch.size,
        [bytes.fromhex(node) for node in proof.path],
    )
    if root is None or root.hex() != batch.root:
        raise ReceiptNotInBatchError(
            f"receipt {receipt.index} is not in the signed batch of receipts"
            f" {batch.first}..{batch.first + batch.size - 1}"
        )
    if request is not None and receipt.request_sha256 != body_sha256(request):
        raise ReceiptMismatchError("the receipt is for another request body")
    if response is not None and receipt.response_sha256 != body_sha256(response):
        raise ReceiptMismatchError("the receipt is for another response body")
    return receipt
