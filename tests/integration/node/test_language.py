"""The enclave node serving a real language model (SmolLM2-135M-Instruct, sealed, loaded
from a sealed memory file) to the official ``openai`` client, metered in tokens."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx
import openai
import pytest

from modellease.client import ReceiptSubject, check_receipt, fetch_receipt_proof
from modellease.custodian import ledger
from modellease.enclave.boot import BootedNode
from modellease.enclave.engines.llama import LlamaEngine
from modellease.protocol.receipts import ReceiptMismatchError, split_stream
from modellease.testing.smollm import MODEL_NAME, smollm2_path
from tests.integration.custodian_server import Custodian
from tests.integration.node_harness import (
    RunningNode,
    Sealed,
    admin_order,
    boot_node,
    lease_for,
    node_config,
    running_node,
    seal,
    wait_until,
)

HAIKU = [{"role": "user", "content": "Write a haiku about the sea."}]


@pytest.fixture(scope="module")
def smollm2() -> bytes:
    return smollm2_path().read_bytes()


@pytest.fixture
def sealed(custodian: Custodian, smollm2: bytes, tmp_path: Path) -> Sealed:
    return seal(custodian, smollm2, tmp_path, name=MODEL_NAME, suffix=".gguf")


def booted_node(
    custodian: Custodian, sealed: Sealed, *, budget: int = 5000, slice_size: int = 1000
) -> BootedNode:
    config = node_config(custodian)
    lease = lease_for(
        custodian,
        sealed,
        config,
        unit=ledger.Unit.TOKENS,
        budget=budget,
        slice_size=slice_size,
    )
    return boot_node(custodian, sealed, config, lease)


def mapped_model_files() -> list[str]:
    """This process's memory mappings that hold a model: the sealed memory file, or any
    file with a model's suffix (there must never be one: no plaintext weights on disk)."""
    maps = Path("/proc/self/maps").read_text().splitlines()
    return [m for m in maps if "memfd:modellease-model" in m or m.endswith((".gguf", ".onnx"))]


def client(node: RunningNode) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{node.url}/v1", api_key="not-used", max_retries=0)


def test_the_openai_client_chats_with_the_sealed_model(
    custodian: Custodian, sealed: Sealed
) -> None:
    booted = booted_node(custodian, sealed)
    assert isinstance(booted.engine, LlamaEngine)
    mapped = mapped_model_files()
    assert mapped  # the weights are mapped from the sealed memory file, and from nothing else
    assert all("memfd:modellease-model" in m for m in mapped)
    with running_node(custodian, booted, renew=False) as node:
        api = client(node)
        assert [m.id for m in api.models.list()] == [MODEL_NAME]
        answer = api.chat.completions.create(
            model=MODEL_NAME,
            messages=HAIKU,
            max_tokens=40,
            temperature=0,
        )
    text = answer.choices[0].message.content
    assert text
    assert "sea" in text.lower()
    assert answer.usage is not None
    assert answer.choices[0].finish_reason in {"stop", "length"}
    usage = booted.runtime.meter.usage()
    assert usage.used == answer.usage.total_tokens
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )
    assert usage.reserved == 0
    assert usage.estimated_flops == 2 * booted.engine.parameters * answer.usage.total_tokens


def test_streaming_gives_the_same_text_and_the_usage(custodian: Custodian, sealed: Sealed) -> None:
    booted = booted_node(custodian, sealed)
    with running_node(custodian, booted, renew=False) as node:
        api = client(node)
        whole = api.chat.completions.create(
            model=MODEL_NAME,
            messages=HAIKU,
            max_tokens=30,
            temperature=0,
        )
        chunks = list(
            api.chat.completions.create(
                model=MODEL_NAME,
                messages=HAIKU,
                max_tokens=30,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    final = chunks[-1]
    assert final.usage is not None
    assert whole.usage is not None
    assert final.usage.total_tokens == whole.usage.total_tokens
    assert booted.runtime.meter.usage().used == 2 * whole.usage.total_tokens


def receipt_subject(booted: BootedNode) -> ReceiptSubject:
    """What this simulated node's receipts are about, as a verified description would say."""
    return ReceiptSubject(
        booted.signing_public_key,
        booted.runtime.lease_id,
        booted.runtime.instance_id,
        booted.manifest.model.sha256,
        booted.manifest.bundle_id,
        insecure=True,
    )


def test_a_stream_ends_with_the_receipt_of_every_byte_before_it(
    custodian: Custodian, sealed: Sealed
) -> None:
    booted = booted_node(custodian, sealed)
    subject = receipt_subject(booted)
    request = {"model": MODEL_NAME, "messages": HAIKU, "max_tokens": 12, "stream": True}
    with running_node(custodian, booted, renew=False) as node, httpx.Client() as http:
        answer = http.post(f"{node.url}/v1/chat/completions", json=request)
        streamed = split_stream(answer.content)
        assert streamed is not None
        covered, value = streamed
        proof = fetch_receipt_proof(SimpleNamespace(url=node.url), value, http=http)  # type: ignore[arg-type]
    assert answer.content.endswith(b"\n\ndata: [DONE]\n\n")
    receipt = check_receipt(subject, proof, request=answer.request.content, response=covered)
    assert receipt.units == booted.runtime.meter.usage().used > 0
    first_event = covered.index(b"\n\n") + 2
    with pytest.raises(ReceiptMismatchError, match="another response body"):
        check_receipt(subject, proof, response=covered[first_event:])


def test_plain_completions_whole_and_streamed(custodian: Custodian, sealed: Sealed) -> None:
    booted = booted_node(custodian, sealed)
    with running_node(custodian, booted, renew=False) as node:
        api = client(node)
        whole = api.completions.create(
            model=MODEL_NAME, prompt="The capital of France is", max_tokens=8, temperature=0
        )
        parts = list(
            api.completions.create(
                model=MODEL_NAME,
                prompt="The capital of France is",
                max_tokens=8,
                temperature=0,
                stream=True,
            )
        )
    assert whole.usage is not None
    assert whole.usage.completion_tokens <= 8
    assert "".join(p.choices[0].text for p in parts) == whole.choices[0].text


def test_a_request_beyond_the_allowance_is_refused_before_it_runs(
    custodian: Custodian, sealed: Sealed
) -> None:
    booted = booted_node(custodian, sealed, budget=150, slice_size=100)
    with (
        running_node(custodian, booted, renew=False) as node,
        pytest.raises(openai.RateLimitError) as refused,
    ):
        client(node).chat.completions.create(
            model=MODEL_NAME,
            messages=HAIKU,
            max_tokens=200,
        )
    assert refused.value.status_code == 429
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["reason"] == "allowance_exhausted"
    usage = booted.runtime.meter.usage()
    assert (usage.used, usage.reserved, usage.requests, usage.refusals) == (0, 0, 0, 1)


def test_a_prompt_longer_than_the_context_is_refused(custodian: Custodian, sealed: Sealed) -> None:
    booted = booted_node(custodian, sealed)
    with (
        running_node(custodian, booted, renew=False) as node,
        httpx.Client(base_url=node.url) as http,
    ):
        answer = http.post(
            "/v1/completions",
            json={"model": MODEL_NAME, "prompt": "sea " * 3000, "max_tokens": 10},
        )
        bad = http.post("/v1/chat/completions", json={"model": MODEL_NAME, "messages": []})
        many = http.post("/v1/completions", json={"model": MODEL_NAME, "prompt": "x", "n": 2})
        listed = http.post("/v1/completions", json={"model": MODEL_NAME, "prompt": ["a", "b"]})
        other = http.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HAIKU})
    assert (answer.status_code, answer.json()["reason"]) == (400, "context_length_exceeded")
    assert (bad.status_code, bad.json()["reason"]) == (400, "malformed_request")
    assert (many.status_code, many.json()["reason"]) == (400, "malformed_request")
    assert (listed.status_code, listed.json()["reason"]) == (400, "malformed_request")
    assert "one prompt per request" in listed.json()["detail"]
    assert (other.status_code, other.json()["reason"]) == (404, "model_not_found")
    assert booted.runtime.meter.usage().used == 0


def test_a_kill_stops_a_running_stream_and_only_what_ran_is_charged(
    custodian: Custodian, sealed: Sealed
) -> None:
    booted = booted_node(custodian, sealed)
    loaded = len(mapped_model_files())
    with running_node(custodian, booted) as node:
        wait_until(node.renewer.stream_connected.is_set)
        stream = client(node).completions.create(
            model=MODEL_NAME,
            prompt="Once upon a time",
            max_tokens=500,
            temperature=0.8,
            seed=1,
            stream=True,
        )
        with stream:
            pieces = [next(iter(stream)).choices[0].text]
            assert admin_order(custodian, "lease-node", "kill", "stop now").status_code == 201
            with pytest.raises(openai.APIError):
                pieces.extend(part.choices[0].text for part in stream)
        wait_until(lambda: booted.engine.closed)
        with pytest.raises(openai.APIStatusError) as refused:
            client(node).completions.create(model=MODEL_NAME, prompt="again", max_tokens=5)
    assert refused.value.status_code == 410
    assert len(mapped_model_files()) == loaded - 1  # this node's weights are gone from memory
    usage = booted.runtime.meter.usage()
    assert usage.reserved == 0
    assert 0 < usage.completion_tokens < 500


def test_a_stream_stopped_by_a_kill_ends_with_the_receipt_of_what_ran(
    custodian: Custodian, sealed: Sealed
) -> None:
    booted = booted_node(custodian, sealed)
    request = {"model": MODEL_NAME, "prompt": "Once upon a time", "max_tokens": 500, "stream": True}
    with running_node(custodian, booted) as node, httpx.Client(timeout=60) as http:
        wait_until(node.renewer.stream_connected.is_set)
        with http.stream("POST", f"{node.url}/v1/completions", json=request) as answer:
            parts = answer.iter_bytes()
            received = next(parts)
            assert admin_order(custodian, "lease-node", "kill", "stop now").status_code == 201
            received += b"".join(parts)
        streamed = split_stream(received)
        assert streamed is not None
        covered, value = streamed
        proof = fetch_receipt_proof(SimpleNamespace(url=node.url), value, http=http)  # type: ignore[arg-type]
    assert b'"type": "engine_stopped"' in covered
    assert not received.endswith(b"data: [DONE]\n\n")  # a stream that failed has no [DONE]
    subject = receipt_subject(booted)
    receipt = check_receipt(subject, proof, response=covered)
    assert receipt.units == booted.runtime.meter.usage().used < len("Once upon a time") + 500
