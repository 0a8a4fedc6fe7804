"""The instance's receipts (:mod:`modellease.protocol.receipts`): issued on each answer's
path without a signature, signed in batches off it.

Pure apart from a lock: no I/O, the clock is a parameter. Rules:

* :meth:`ReceiptLog.issue` numbers a receipt, keeps its leaf hash and returns its canonical
  JSON: a SHA-256 and a serialisation, no signature, so an answer waits for no signing;
* :meth:`ReceiptLog.seal` signs one :class:`~modellease.protocol.receipts.ReceiptBatch`
  over every receipt issued since the last batch; the node calls it on a short period, on
  shutdown, whenever a batch reaches :data:`MAX_BATCH` receipts, and when a proof is asked
  for a receipt still pending, so a proof never waits for the period;
* :meth:`ReceiptLog.proof` gives the signed batch and the inclusion path of a receipt; the
  node keeps at least its last ``retain`` receipts' proofs (older batches are dropped whole)
  and says so when asked for an older one (:class:`ReceiptNotKeptError`).
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from modellease._hazmat import SigningKey
from modellease.errors import InvalidInputError
from modellease.protocol import SignedDocument, format_timestamp, sign_document
from modellease.protocol.merkle import inclusion_path, tree_levels
from modellease.protocol.receipts import (
    RECEIPT_BATCH_PAYLOAD_TYPE,
    ReceiptBatch,
    ReceiptWriter,
    receipt_leaf_hash,
)

MAX_BATCH: Final = 4096
# proofs are fetched right after the answer; at worst (a batch per receipt, when every
# answer is checked at once) each kept receipt costs about 1.5 kB, 25 MB in all
RETAINED_RECEIPTS: Final = 16384


class ReceiptNotKeptError(InvalidInputError):
    """No receipt with this index was issued, or it is older than the node keeps."""

    reason = "receipt_not_found"


@dataclass(frozen=True, slots=True)
class _Batch:
    first: int
    levels: list[list[bytes]]
    signed: SignedDocument

    @property
    def size(self) -> int:
        return len(self.levels[0])


def _first(batch: _Batch) -> int:
    return batch.first


class ReceiptLog:
    """One instance's receipts and their signed batches (see the module docstring)."""

    def __init__(
        self,
        *,
        lease_id: str,
        instance_id: str,
        signer: SigningKey,
        retain: int = RETAINED_RECEIPTS,
    ) -> None:
        if retain < 1:
            raise ValueError("a receipt log keeps the proof of at least its last receipt")
        self.lease_id = lease_id
        self.instance_id = instance_id
        self._signer = signer
        self._retain = retain
        self._lock = threading.Lock()
        self._next = 0
        self._pending: list[bytes] = []  # leaf hashes of receipts not yet in a batch
        self._batches: list[_Batch] = []  # oldest first
        self._kept = 0  # receipts in self._batches
        self._second: tuple[int, str] = (-1, "")  # the last second stamped, and its text
        self._writer: tuple[tuple[str, str], ReceiptWriter] | None = None  # by bundle, model

    @property
    def issued(self) -> int:
        return self._next

    def issue(
        self,
        *,
        bundle_id: str,
        model_sha256: str,
        request_sha256: str,
        response_sha256: str,
        units: int,
        unit: str,
        now: datetime,
    ) -> bytes:
        """Number and record the receipt of one answer; its canonical JSON."""
        with self._lock:
            payload = self._writer_for(bundle_id, model_sha256).write(
                index=self._next,
                request_sha256=request_sha256,
                response_sha256=response_sha256,
                units=units,
                unit=unit,
                issued_at=self._timestamp(now),
            )
            self._pending.append(receipt_leaf_hash(payload))
            self._next += 1
            if len(self._pending) >= MAX_BATCH:
                self._seal(now)
        return payload

    def seal(self, now: datetime) -> SignedDocument | None:
        """Sign a batch of every receipt issued since the last one (``None``: there were none)."""
        with self._lock:
            return self._seal(now)

    def proof(self, index: int, now: datetime) -> tuple[SignedDocument, list[bytes]]:
        """The signed batch that covers receipt ``index`` and the receipt's inclusion path."""
        with self._lock:
            if not 0 <= index < self._next:
                raise ReceiptNotKeptError(f"receipt {index} has not been issued")
            if index >= self._next - len(self._pending):
                self._seal(now)
            if not self._batches or index < self._batches[0].first:
                raise ReceiptNotKeptError(
                    f"receipt {index} is no longer kept: this node keeps the proofs of its"
                    f" last {self._retain} receipts"
                )
            batch = self._batches[bisect.bisect_right(self._batches, index, key=_first) - 1]
            return batch.signed, inclusion_path(batch.levels, index - batch.first)

    def _writer_for(self, bundle_id: str, model_sha256: str) -> ReceiptWriter:
        """The writer for this bundle and model (one node serves one, so it is made once)."""
        if self._writer is None or self._writer[0] != (bundle_id, model_sha256):
            writer = ReceiptWriter(
                lease_id=self.lease_id,
                instance_id=self.instance_id,
                bundle_id=bundle_id,
                model_sha256=model_sha256,
            )
            self._writer = ((bundle_id, model_sha256), writer)
        return self._writer[1]

    def _timestamp(self, now: datetime) -> str:
        """``format_timestamp(now)``, formatted once per second (this is on every answer's path)."""
        second = int(now.timestamp())
        if second != self._second[0]:
            self._second = (second, format_timestamp(now))
        return self._second[1]

    def _seal(self, now: datetime) -> SignedDocument | None:
        if not self._pending:
            return None
        levels = tree_levels(self._pending)
        first = self._next - len(self._pending)
        signed = sign_document(
            ReceiptBatch(
                lease_id=self.lease_id,
                instance_id=self.instance_id,
                first=first,
                size=len(self._pending),
                root=levels[-1][0].hex(),
                issued_at=format_timestamp(now),
            ),
            payload_type=RECEIPT_BATCH_PAYLOAD_TYPE,
            signer=self._signer,
        )
        self._batches.append(_Batch(first, levels, signed))
        self._kept += len(self._pending)
        self._pending = []
        while self._kept - self._batches[0].size >= self._retain:
            self._kept -= self._batches.pop(0).size
        return signed
