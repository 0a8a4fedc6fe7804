"""Receipts checked by the consumer: a proof from the node's log passes, each way a proof
or an answer about it can be wrong has its own typed error."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from modellease._hazmat import SigningKey
from modellease.client import (
    MissingReceiptError,
    ReceiptSubject,
    check_receipt,
    check_response,
    fetch_receipt_proof,
)
from modellease.enclave.receipt_log import ReceiptLog
from modellease.errors import TransportError
from modellease.keys import InstanceSigningKey
from modellease.protocol import DocumentFormatError, UnknownSignerError
from modellease.protocol.receipts import (
    RECEIPT_HEADER,
    ReceiptMismatchError,
    ReceiptProof,
    receipt_header,
)
from modellease.testing.server import serving

KEY = SigningKey.from_seed(b"\x05" * 32)
MODEL = hashlib.sha256(b"model").hexdigest()
REQUEST, RESPONSE = b'{"prompt":"secret"}', b'{"answer":"secret"}'
SUBJECT = ReceiptSubject(
    InstanceSigningKey(KEY.public_bytes()), "lease-1", "inst-1", MODEL, "ab" * 16, insecure=False
)
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def node_log(response: bytes = RESPONSE) -> tuple[ReceiptLog, bytes]:
    receipts = ReceiptLog(lease_id="lease-1", instance_id="inst-1", signer=KEY)
    payload = receipts.issue(
        bundle_id="ab" * 16,
        model_sha256=MODEL,
        request_sha256=hashlib.sha256(REQUEST).hexdigest(),
        response_sha256=hashlib.sha256(response).hexdigest(),
        units=3,
        unit="tokens",
        now=T0,
    )
    return receipts, payload


def proof_of(receipts: ReceiptLog, payload: bytes) -> ReceiptProof:
    batch, path = receipts.proof(0, T0)
    return ReceiptProof(receipt=payload, batch=batch, path=[p.hex() for p in path])


def test_a_genuine_receipt_passes_and_its_proof_says_no_text() -> None:
    proof = proof_of(*node_log())
    checked = check_receipt(SUBJECT, proof, request=REQUEST, response=RESPONSE)
    assert (checked.units, checked.unit, checked.index) == (3, "tokens", 0)
    assert b"secret" not in proof.to_json()


def test_a_proof_for_another_node_or_answer_is_refused() -> None:
    proof = proof_of(*node_log())
    stranger = dataclasses.replace(
        SUBJECT,
        signing_public_key=InstanceSigningKey(SigningKey.from_seed(b"\x06" * 32).public_bytes()),
    )
    with pytest.raises(UnknownSignerError):
        check_receipt(stranger, proof)
    with pytest.raises(ReceiptMismatchError):
        check_receipt(SUBJECT, proof, response=REQUEST)


def test_an_answer_without_a_receipt_is_refused() -> None:
    answer = httpx.Response(200, content=RESPONSE, request=httpx.Request("POST", "https://n"))
    with pytest.raises(MissingReceiptError):
        check_response(None, answer)  # type: ignore[arg-type]


@contextmanager
def node_answering(answer: Response) -> Iterator[Any]:
    """A server on loopback whose /v1/receipts/{index} gives ``answer``, and a stand-in for
    the verified node: its URL and what a receipt must be about (no pinning: plain HTTP)."""
    app = FastAPI()

    @app.get("/v1/receipts/{index}")
    async def proof(index: int) -> Response:
        return answer

    with serving(app) as url:
        yield SimpleNamespace(
            url=url,
            signing_public_key=SUBJECT.signing_public_key,
            lease_id="lease-1",
            instance_id="inst-1",
            model_sha256=MODEL,
            bundle_id="ab" * 16,
            insecure=False,
        )


def test_the_proof_is_fetched_from_the_node() -> None:
    receipts, payload = node_log()
    batch, path = receipts.proof(0, T0)
    body = {"batch": batch.model_dump(mode="json"), "path": [p.hex() for p in path]}
    with node_answering(JSONResponse(body)) as node, httpx.Client() as http:
        proof = fetch_receipt_proof(node, receipt_header(payload), http=http)
        assert check_receipt(SUBJECT, proof).index == 0
        answer = httpx.Response(
            200,
            content=RESPONSE,
            headers={RECEIPT_HEADER: receipt_header(payload)},
            request=httpx.Request("POST", node.url, content=REQUEST),
        )
        assert check_response(node, answer, http=http).receipt.units == 3


def test_a_streamed_answer_is_checked_by_its_receipt_line() -> None:
    events = b'data: {"answer":"secret"}\n\n'
    receipts, payload = node_log(events)
    batch, path = receipts.proof(0, T0)
    body = {"batch": batch.model_dump(mode="json"), "path": [p.hex() for p in path]}
    line = b": x-modellease-receipt " + receipt_header(payload).encode() + b"\n\n"
    event_stream = {"content-type": "text/event-stream"}

    def streamed(content: bytes, headers: dict[str, str]) -> httpx.Response:
        request = httpx.Request("POST", "https://n", content=REQUEST)
        return httpx.Response(200, content=content, headers=headers, request=request)

    with node_answering(JSONResponse(body)) as node, httpx.Client() as http:
        whole = streamed(events + line + b"data: [DONE]\n\n", event_stream)
        assert check_response(node, whole, http=http).receipt.index == 0
        with pytest.raises(MissingReceiptError, match="no x-modellease-receipt header or line"):
            check_response(node, streamed(events, event_stream), http=http)
        with pytest.raises(MissingReceiptError):  # a receipt line counts in a stream only
            check_response(node, streamed(events + line, {}), http=http)


@pytest.mark.parametrize(
    ("answer", "error", "match"),
    [
        (JSONResponse({"reason": "receipt_not_found"}, 404), TransportError, "answered 404"),
        (JSONResponse({"batch": {}, "path": []}), DocumentFormatError, "not a receipt proof"),
        (JSONResponse({"path": []}), DocumentFormatError, "not a receipt proof"),
        (Response(b"not json"), DocumentFormatError, "not a receipt proof"),
        (Response(b"[" * 20000), DocumentFormatError, "too large"),
    ],
)
def test_a_wrong_answer_for_a_proof_is_refused(
    answer: Response, error: type[Exception], match: str
) -> None:
    _, payload = node_log()
    with node_answering(answer) as node, httpx.Client() as http, pytest.raises(error, match=match):
        fetch_receipt_proof(node, receipt_header(payload), http=http)


def test_a_node_that_does_not_answer_is_a_transport_error() -> None:
    _, payload = node_log()
    with node_answering(Response()) as node:
        url = node.url
    with httpx.Client() as http, pytest.raises(TransportError, match="cannot fetch the proof"):
        fetch_receipt_proof(SimpleNamespace(url=url), receipt_header(payload), http=http)  # type: ignore[arg-type]


def test_a_garbled_header_is_refused_before_anything_is_fetched() -> None:
    with pytest.raises(DocumentFormatError, match="not base64"):
        fetch_receipt_proof(None, "not base64!")  # type: ignore[arg-type]
    with pytest.raises(DocumentFormatError, match="not a receipt"):
        fetch_receipt_proof(None, receipt_header(b"{}"))  # type: ignore[arg-type]


def test_a_node_description_is_read_or_refused() -> None:
    summary = {
        "signing_public_key": KEY.public_bytes().hex(),
        "lease_id": "lease-1",
        "instance_id": "inst-1",
        "model": {"sha256": MODEL, "bundle_id": "ab" * 16},
        "insecure": False,
    }
    assert ReceiptSubject.from_summary({"verified": True, "node": summary}) == SUBJECT
    simulated = ReceiptSubject.from_summary(summary | {"insecure": True})
    assert simulated == dataclasses.replace(SUBJECT, insecure=True)
    with pytest.raises(ValueError, match="not a verified node description"):
        ReceiptSubject.from_summary({"lease_id": "lease-1"})
