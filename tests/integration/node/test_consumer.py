"""The consumer's side against a real node (simulated TEE) on loopback over attested TLS:
verify first, then talk only over connections pinned to the attested key. Each attack is
named after itself and ends in its own typed error, before any prompt byte is sent."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from modellease._hazmat import SigningKey, TlsPrivateKey
from modellease.attestation import policy_from_mapping
from modellease.client import (
    ModelMismatchError,
    NotHttpsError,
    ReceiptSubject,
    TlsKeyMismatchError,
    UntrustedManifestError,
    VerifiedNode,
    check_receipt,
    check_response,
    fetch_receipt_proof,
    openai_client,
    pinned_client,
    verify_node,
)
from modellease.custodian.ledger import Unit
from modellease.enclave import api
from modellease.enclave.boot import BootedNode
from modellease.enclave.tls import NodeCertificate
from modellease.errors import NonceMismatchError, SimulatedEvidenceError
from modellease.keys import CustodianPublicKey, InstanceSigningKey, Nonce
from modellease.protocol import UnknownSignerError, WrongSubjectError
from modellease.protocol.receipts import (
    RECEIPT_HEADER,
    ReceiptMismatchError,
    ReceiptNotInBatchError,
    ReceiptProof,
    receipt_from_header,
)
from modellease.testing.digits import DigitsModel
from modellease.testing.server import serving
from modellease.testing.smollm import MODEL_NAME, smollm2_path
from tests.integration.custodian_server import Custodian
from tests.integration.node_harness import (
    RunningNode,
    Sealed,
    boot_node,
    dev_policy,
    lease_for,
    node_config,
    running_node,
    seal,
    wait_until,
)
from tests.integration.tls_proxy import tls_proxy

ROW = {"inputs": {"X": [[0.0] * 64]}}


@contextmanager
def attested_node(custodian: Custodian, sealed: Sealed) -> Iterator[tuple[RunningNode, dict]]:
    config = node_config(custodian)
    lease = lease_for(custodian, sealed, config)
    booted = boot_node(custodian, sealed, config, lease)
    with running_node(custodian, booted, renew=False, tls=True) as node:
        yield node, dev_policy(config)


@pytest.fixture
def node(custodian: Custodian, sealed: Sealed) -> Iterator[tuple[RunningNode, dict]]:
    with attested_node(custodian, sealed) as running:
        yield running


def trusted(custodian: Custodian) -> list[CustodianPublicKey]:
    return [custodian.home.public_key]


def verify(custodian: Custodian, url: str, policy: dict, **extra: object) -> VerifiedNode:
    return verify_node(
        url, policy=policy_from_mapping(policy), trusted_custodians=trusted(custodian), **extra
    )


def test_a_verified_node_says_what_it_proved_and_serves_over_the_pinned_connection(
    custodian: Custodian, node: tuple[RunningNode, dict], sealed: Sealed, digits_model: DigitsModel
) -> None:
    running, policy = node
    booted: BootedNode = running.booted
    verified = verify(
        custodian, running.url, policy, expect_model_sha256=booted.manifest.model.sha256
    )
    assert verified.url == running.url
    assert (verified.tee.value, verified.insecure) == ("simulated", True)
    assert verified.measurements["measurement"] == policy["simulated"]["measurement"][0]  # type: ignore[index]
    assert (verified.model_name, verified.bundle_id) == ("digits", sealed.bundle_id)
    assert verified.model_sha256 == booted.manifest.model.sha256
    assert verified.custodian_public_key == custodian.home.public_key.hex()
    assert (verified.lease_id, verified.status) == ("lease-node", "serving")
    assert verified.instance_id == booted.runtime.instance_id
    assert verified.signing_public_key == booted.signing_public_key
    assert verified.certificate_der == booted.tls.der
    assert bytes.fromhex(verified.tls_public_key_sha256) == booted.tls.key.public_key_sha256()
    assert verified.summary()["model"]["sha256"] == verified.model_sha256  # type: ignore[index]
    with pinned_client(verified) as http:
        answer = http.post(
            "/v1/infer", json={"inputs": {"X": digits_model.test_inputs[:3].tolist()}}
        )
    assert answer.json()["outputs"]["label"] == digits_model.test_labels[:3].tolist()
    receipt = check_response(verified, answer).receipt
    assert (receipt.units, receipt.unit, receipt.lease_id) == (1, "requests", "lease-node")
    assert receipt.model_sha256 == verified.model_sha256
    assert receipt.bundle_id == sealed.bundle_id


def test_a_receipt_does_not_fit_another_answer_or_another_node(
    custodian: Custodian, node: tuple[RunningNode, dict], digits_model: DigitsModel
) -> None:
    running, policy = node
    verified = verify(custodian, running.url, policy)
    with pinned_client(verified) as http:
        first = http.post(
            "/v1/infer", json={"inputs": {"X": digits_model.test_inputs[:1].tolist()}}
        )
        second = http.post(
            "/v1/infer", json={"inputs": {"X": digits_model.test_inputs[1:2].tolist()}}
        )
        proof = fetch_receipt_proof(verified, first.headers[RECEIPT_HEADER], http=http)
    check_receipt(verified, proof, request=first.request.content, response=first.content)
    with pytest.raises(ReceiptMismatchError, match="another response body"):
        check_receipt(verified, proof, request=first.request.content, response=second.content)
    with pytest.raises(ReceiptMismatchError, match="another request body"):
        check_receipt(verified, proof, request=second.request.content)
    cheaper = proof.receipt.replace(b'"units":"1"', b'"units":"0"')
    assert cheaper != proof.receipt
    with pytest.raises(ReceiptNotInBatchError):
        check_receipt(verified, proof.model_copy(update={"receipt": cheaper}))
    stranger = dataclasses.replace(
        ReceiptSubject.of(verified),
        signing_public_key=InstanceSigningKey(SigningKey.generate().public_bytes()),
    )
    with pytest.raises(WrongSubjectError, match="bundle_id"):
        check_receipt(dataclasses.replace(ReceiptSubject.of(verified), bundle_id="ab" * 16), proof)
    with pytest.raises(UnknownSignerError):
        check_receipt(stranger, proof)


def test_receipts_are_numbered_proved_by_the_node_and_signed_on_shutdown(
    custodian: Custodian, sealed: Sealed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "RECEIPT_BATCH_SECONDS", 3600.0)  # only asking or stopping signs
    with attested_node(custodian, sealed) as (running, policy):
        verified = verify(custodian, running.url, policy)
        with pinned_client(verified) as http:
            answers = [http.post("/v1/infer", json=ROW) for _ in range(3)]
            proofs = [check_response(verified, answer, http=http) for answer in answers]
            missing = http.get("/v1/receipts/3")
            garbled = http.get("/v1/receipts/-1")
            unanswered = http.post("/v1/infer", json=ROW)  # its proof is never asked for
        assert [proof.receipt.index for proof in proofs] == [0, 1, 2]
        assert missing.status_code == 404
        assert missing.json()["reason"] == "receipt_not_found"
        assert (garbled.status_code, garbled.json()["reason"]) == (400, "invalid_input")
        receipts = running.booted.runtime.receipts
    # receipt 3, never asked for, was signed when the node stopped
    assert receipts.issued == 4
    assert receipts.seal(custodian.clock()) is None
    batch, path = receipts.proof(3, custodian.clock())
    proof = ReceiptProof(
        receipt=receipt_from_header(unanswered.headers[RECEIPT_HEADER]),
        batch=batch,
        path=[node.hex() for node in path],
    )
    assert check_receipt(verified, proof, response=unanswered.content).index == 3


def test_a_batch_that_fails_to_sign_is_signed_at_a_later_period(
    custodian: Custodian,
    sealed: Sealed,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(api, "RECEIPT_BATCH_SECONDS", 0.01)
    with attested_node(custodian, sealed) as (running, _):
        receipts = running.booted.runtime.receipts
        sign_batch, tries = receipts.seal, []

        def failing_once(now: datetime) -> object:
            tries.append(now)
            if len(tries) == 1:
                raise RuntimeError("the signer failed")
            return sign_batch(now)

        monkeypatch.setattr(receipts, "seal", failing_once)
        with httpx.Client(verify=False) as http:
            http.post(f"{running.url}/v1/infer", json=ROW).raise_for_status()
        wait_until(lambda: len(tries) >= 3)  # the period goes on after the failure
        assert sign_batch(custodian.clock()) is None  # and the answer's receipt was signed
    assert "receipt batch not signed" in caplog.text


def test_the_openai_client_verifies_then_chats_over_the_pinned_connection(
    custodian: Custodian, tmp_path: Path
) -> None:
    sealed = seal(custodian, smollm2_path().read_bytes(), tmp_path, name=MODEL_NAME, suffix=".gguf")
    config = node_config(custodian)
    lease = lease_for(custodian, sealed, config, unit=Unit.TOKENS, budget=10_000, slice_size=1_000)
    booted = boot_node(custodian, sealed, config, lease)
    with (
        running_node(custodian, booted, renew=False, tls=True) as running,
        openai_client(
            running.url,
            policy=policy_from_mapping(dev_policy(config)),
            trusted_custodians=trusted(custodian),
            expect_model_sha256=booted.manifest.model.sha256,
        ) as client,
    ):
        chat = client.chat.completions.create(
            model=MODEL_NAME,
            messages=[{"role": "user", "content": "Say hello in Spanish."}],
            max_tokens=8,
            temperature=0,
        )
    assert chat.choices[0].message.content
    assert chat.usage is not None
    assert chat.usage.completion_tokens <= 8


def test_man_in_the_middle_with_another_tls_key_is_refused_before_any_prompt_byte(
    custodian: Custodian, node: tuple[RunningNode, dict]
) -> None:
    running, policy = node
    with tls_proxy(running.url) as mallory:
        # Verifying through the proxy: the evidence is the node's, fresh, with our nonce,
        # but the key of our connection is the proxy's.
        with pytest.raises(TlsKeyMismatchError, match="is not the one the evidence binds"):
            verify(custodian, mallory.url, policy)
        assert b"POST" not in mallory.captured  # only the nonce request went through
        # Verified directly, then sent through the proxy: the pinned handshake fails, and
        # the proxy reads not one byte of the request.
        verified = verify(custodian, running.url, policy)
        diverted = dataclasses.replace(verified, url=mallory.url)
        mallory.captured.clear()
        with (
            openai_client(node=diverted) as client,
            pytest.raises(openai.APIConnectionError),
        ):
            client.with_options(max_retries=0).completions.create(
                model="digits", prompt="the secret prompt", max_tokens=1
            )
        with pinned_client(diverted) as http, pytest.raises(httpx.ConnectError):
            http.post("/v1/infer", json=ROW)
    assert mallory.captured == b""
    assert mallory.handshakes_failed >= 2


@contextmanager
def impostor(answer: dict) -> Iterator[str]:
    """A server with its own TLS key that answers /attestation with ``answer``."""
    app = FastAPI()

    @app.get("/attestation")
    async def attestation() -> JSONResponse:
        return JSONResponse(answer)

    certificate = NodeCertificate.issue(TlsPrivateKey.generate(), evidence=b"{}", name="impostor")
    with serving(app, tls=certificate.server_context) as url:
        yield url


def test_evidence_replayed_with_a_stale_nonce_is_refused(
    custodian: Custodian, node: tuple[RunningNode, dict]
) -> None:
    running, policy = node
    recorded = httpx.get(
        f"{running.url}/attestation", params={"nonce": "11" * 32}, verify=False
    ).json()
    with impostor(recorded) as url, pytest.raises(NonceMismatchError) as refused:
        verify(custodian, url, policy)
    assert refused.value.step == "3. nonce"


def test_evidence_replayed_with_the_right_nonce_from_another_node_is_refused(
    custodian: Custodian, node: tuple[RunningNode, dict]
) -> None:
    """The impostor got evidence for our very nonce from the real node, but cannot present
    the real node's TLS key."""
    running, policy = node
    nonce = Nonce(bytes.fromhex("22" * 32))
    fresh = httpx.get(f"{running.url}/attestation", params={"nonce": nonce.hex()}, verify=False)
    with impostor(fresh.json()) as url, pytest.raises(TlsKeyMismatchError):
        verify(custodian, url, policy, nonce=nonce)


def test_a_manifest_from_another_custodian_is_refused(
    custodian: Custodian, node: tuple[RunningNode, dict]
) -> None:
    running, policy = node
    stranger = CustodianPublicKey(SigningKey.generate().public_bytes())
    with pytest.raises(UntrustedManifestError, match="not signed by any custodian you trust"):
        verify_node(running.url, policy=policy_from_mapping(policy), trusted_custodians=[stranger])


def test_another_model_than_the_one_expected_is_refused(
    custodian: Custodian, node: tuple[RunningNode, dict]
) -> None:
    running, policy = node
    expected = hashlib.sha256(b"another model").hexdigest()
    with pytest.raises(ModelMismatchError, match=f"expected {expected}"):
        verify(custodian, running.url, policy, expect_model_sha256=expected)


def test_a_policy_without_unsafe_allow_simulated_refuses_the_simulated_node(
    custodian: Custodian, node: tuple[RunningNode, dict]
) -> None:
    running, _ = node
    production = {
        "allowed_tees": ["tdx"],
        "tdx": {k: ["00" * 48] for k in ("mrtd", "rtmr0", "rtmr1", "rtmr2")},
    }
    with pytest.raises(SimulatedEvidenceError) as refused:
        verify(custodian, running.url, production)
    assert refused.value.step == "1. tee-allowed"


def test_plain_http_is_refused_before_connecting(custodian: Custodian) -> None:
    policy = dev_policy(node_config(custodian))
    with pytest.raises(NotHttpsError, match="is not an https:// URL"):
        verify(custodian, "http://127.0.0.1:9", policy)
