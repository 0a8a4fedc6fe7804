"""The node's receipt log: receipts numbered as issued, signed in batches, each one proved
by its batch and path, the proofs kept for the last receipts only."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime

import pytest

from modellease._hazmat import SigningKey
from modellease.enclave import receipt_log
from modellease.enclave.receipt_log import ReceiptLog, ReceiptNotKeptError
from modellease.keys import InstanceSigningKey
from modellease.protocol import open_document
from modellease.protocol.receipts import (
    RECEIPT_BATCH_PAYLOAD_TYPE,
    Receipt,
    ReceiptBatch,
    ReceiptProof,
    verify_receipt_proof,
)

KEY = SigningKey.from_seed(b"\x0a" * 32)
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MODEL = hashlib.sha256(b"model").hexdigest()


def log(**options: int) -> ReceiptLog:
    return ReceiptLog(lease_id="lease-1", instance_id="inst-1", signer=KEY, **options)


def issue(receipts: ReceiptLog, units: int = 1) -> bytes:
    return receipts.issue(
        bundle_id="ab" * 16,
        model_sha256=MODEL,
        request_sha256="01" * 32,
        response_sha256="02" * 32,
        units=units,
        unit="tokens",
        now=T0,
    )


def prove(receipts: ReceiptLog, payload: bytes, index: int) -> Receipt:
    batch, path = receipts.proof(index, T0)
    return verify_receipt_proof(
        ReceiptProof(receipt=payload, batch=batch, path=[p.hex() for p in path]),
        instance_key=InstanceSigningKey(KEY.public_bytes()),
        lease_id="lease-1",
        instance_id="inst-1",
        model_sha256=MODEL,
        bundle_id="ab" * 16,
    )


def batch_of(signed: object) -> ReceiptBatch:
    return open_document(
        signed,  # type: ignore[arg-type]
        model=ReceiptBatch,
        payload_type=RECEIPT_BATCH_PAYLOAD_TYPE,
        trusted_keys=[KEY.public_bytes()],
    )


def test_receipts_are_numbered_and_each_batch_covers_those_since_the_last() -> None:
    receipts = log()
    assert receipts.seal(T0) is None  # nothing to sign
    payloads = [issue(receipts, units=u) for u in (5, 6, 7)]
    first = batch_of(receipts.seal(T0))
    assert (first.first, first.size) == (0, 3)
    payloads.append(issue(receipts))
    second = batch_of(receipts.seal(T0))
    assert (second.first, second.size, receipts.issued) == (3, 1, 4)
    assert receipts.seal(T0) is None
    for index, payload in enumerate(payloads):
        assert prove(receipts, payload, index).index == index
    assert prove(receipts, payloads[1], 1).units == 6


def test_a_proof_asked_for_a_pending_receipt_signs_its_batch_at_once() -> None:
    receipts = log()
    payload = issue(receipts)
    assert prove(receipts, payload, 0).index == 0
    assert receipts.seal(T0) is None  # already signed


def test_a_full_batch_is_signed_when_it_fills(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(receipt_log, "MAX_BATCH", 4)
    receipts = log()
    for _ in range(4):
        issue(receipts)
    assert receipts.seal(T0) is None  # the fourth receipt sealed the batch
    issue(receipts)
    assert batch_of(receipts.seal(T0)).first == 4


def test_receipts_never_issued_or_no_longer_kept_have_no_proof() -> None:
    receipts = log(retain=4)
    payloads = []
    for _ in range(3):  # three batches: 0-1, 2-3, 4-5
        payloads += [issue(receipts), issue(receipts)]
        receipts.seal(T0)
    with pytest.raises(ReceiptNotKeptError, match="receipt 6 has not been issued"):
        receipts.proof(6, T0)
    with pytest.raises(ReceiptNotKeptError, match="receipt -1 has not been issued"):
        receipts.proof(-1, T0)
    with pytest.raises(ReceiptNotKeptError, match="receipt 1 is no longer kept"):
        receipts.proof(1, T0)  # the oldest batch went: 4 later receipts are kept
    assert [prove(receipts, payloads[i], i).index for i in range(2, 6)] == [2, 3, 4, 5]


def test_a_log_keeps_at_least_one_proof() -> None:
    with pytest.raises(ValueError, match="at least its last receipt"):
        log(retain=0)


def test_concurrent_answers_get_distinct_receipts_all_proved() -> None:
    receipts = log()
    issued: list[bytes] = []
    lock = threading.Lock()

    def answer() -> None:
        for _ in range(50):
            payload = issue(receipts)
            with lock:
                issued.append(payload)

    threads = [threading.Thread(target=answer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    indices = sorted(Receipt.model_validate_json(p).index for p in issued)
    assert indices == list(range(200))
    for payload in issued:
        index = Receipt.model_validate_json(payload).index
        assert prove(receipts, payload, index).index == index
