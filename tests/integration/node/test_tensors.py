"""The enclave node end to end with a tensor model: a real custodian and a real node on
loopback, the digits classifier sealed, leased, enrolled (simulated TEE), served over HTTP,
metered, renewed, stopped.
"""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import numpy as np
import pytest
from opentelemetry import trace

from modellease.attestation import Evidence, appraise, policy_from_mapping
from modellease.bundle.manifest import SignedManifest, verify_manifest
from modellease.enclave.api_tensors import NPZ
from modellease.enclave.wire import CustodianClient
from modellease.keys import Nonce
from modellease.protocol import canonical_json, parse_timestamp
from modellease.testing.digits import DigitsModel
from tests.integration.custodian_server import Custodian
from tests.integration.node_harness import (
    Sealed,
    admin_order,
    boot_node,
    dev_policy,
    lease_for,
    node_config,
    running_node,
    wait_until,
)
from tests.unit.test_http_telemetry import SpyTracerProvider


def infer(http: httpx.Client, rows: np.ndarray) -> httpx.Response:
    return http.post("/v1/infer", json={"inputs": {"X": rows.tolist()}})


def test_a_node_enrols_opens_the_bundle_in_memory_and_classifies(
    custodian: Custodian, sealed: Sealed, digits_model: DigitsModel
) -> None:
    config = node_config(custodian)
    lease = lease_for(custodian, sealed, config)
    booted = boot_node(custodian, sealed, config, lease)
    with (
        running_node(custodian, booted, renew=False) as node,
        httpx.Client(base_url=node.url) as http,
    ):
        answer = infer(http, digits_model.test_inputs[:8])
        assert answer.status_code == 200
        body = answer.json()
        assert body["outputs"]["label"] == digits_model.test_labels[:8].tolist()
        assert body["usage"] == {"units": 1, "rows": 8}
        assert answer.headers["x-modellease-units"] == "1"
        usage = booted.runtime.meter.usage()
        assert (usage.requests, usage.used, usage.reserved) == (1, 1, 0)


def test_binary_tensors_in_and_out(
    custodian: Custodian, sealed: Sealed, digits_model: DigitsModel
) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    buffer = io.BytesIO()
    np.savez(buffer, X=digits_model.test_inputs[:100])
    with (
        running_node(custodian, booted, renew=False) as node,
        httpx.Client(base_url=node.url) as http,
    ):
        answer = http.post(
            "/v1/infer", content=buffer.getvalue(), headers={"content-type": NPZ, "accept": NPZ}
        )
        assert answer.status_code == 200
        assert answer.headers["content-type"] == NPZ
        with np.load(io.BytesIO(answer.content), allow_pickle=False) as outputs:
            labels = outputs["label"]
        assert (labels == digits_model.test_labels[:100]).mean() > 0.9


def test_malformed_tensors_are_refused_and_nothing_is_charged(
    custodian: Custodian, sealed: Sealed
) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    with (
        running_node(custodian, booted, renew=False) as node,
        httpx.Client(base_url=node.url) as http,
    ):
        cases = [
            http.post(
                "/v1/infer", content=b"{not json", headers={"content-type": "application/json"}
            ),
            http.post("/v1/infer", json={"X": [[0.0] * 64]}),
            http.post("/v1/infer", json={"inputs": {"Y": [[0.0] * 64]}}),
            http.post("/v1/infer", json={"inputs": {"X": [[0.0] * 63]}}),
            http.post("/v1/infer", content=b"PK-not-a-zip", headers={"content-type": NPZ}),
        ]
    for answer in cases:
        assert answer.status_code == 400
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["reason"] == "bad_inference_input"
    usage = booted.runtime.meter.usage()
    assert (usage.requests, usage.used, usage.reserved, usage.refusals) == (0, 0, 0, 0)


def test_parallel_requests_never_exceed_the_allowance(
    custodian: Custodian, sealed: Sealed, digits_model: DigitsModel
) -> None:
    """64 concurrent requests against a 10-request slice: exactly 10 run, 54 are 429."""
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    row = digits_model.test_inputs[:1]
    with (
        running_node(custodian, booted, renew=False) as node,
        httpx.Client(base_url=node.url, limits=httpx.Limits(max_connections=64)) as http,
        ThreadPoolExecutor(max_workers=32) as pool,
    ):
        answers = list(pool.map(lambda _: infer(http, row), range(64)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 10 + [429] * 54
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["reason"] == "allowance_exhausted"
    usage = booted.runtime.meter.usage()
    assert (usage.allowance, usage.used, usage.requests, usage.refusals) == (10, 10, 10, 54)


def test_a_low_slice_wakes_the_renewer_and_serving_goes_on(
    custodian: Custodian, sealed: Sealed, digits_model: DigitsModel
) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    row = digits_model.test_inputs[:1]
    with running_node(custodian, booted) as node, httpx.Client(base_url=node.url) as http:
        refusals: set[str] = set()

        def serve_one() -> bool:  # True once a request is served; refusals remembered
            answer = infer(http, row)
            if answer.status_code != 200:
                refusals.add(answer.json()["reason"])
            return answer.status_code == 200

        for _ in range(25):
            wait_until(serve_one)
        assert refusals <= {"allowance_exhausted"}
        assert node.renewer.renewals >= 2
    _lease, instances = custodian.plane.lease_status("lease-node")
    assert instances[0].allowance >= 30


def test_a_kill_is_pushed_and_the_node_refuses_and_drops_the_model(
    custodian: Custodian, sealed: Sealed, digits_model: DigitsModel
) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    row = digits_model.test_inputs[:1]
    with running_node(custodian, booted) as node, httpx.Client(base_url=node.url) as http:
        assert infer(http, row).status_code == 200
        wait_until(node.renewer.stream_connected.is_set)
        assert admin_order(custodian, "lease-node", "kill", "licence ended").status_code == 201
        wait_until(lambda: infer(http, row).status_code == 410)
        refused = infer(http, row)
        assert refused.json()["reason"] == "killed"
        assert booted.engine.closed
        assert http.get("/healthz").status_code == 503
        wait_until(lambda: node.renewer.renewals >= 1)  # the final usage report
    assert booted.runtime.meter.usage().requests == 1


def test_the_dead_mans_switch_stops_serving_then_drops_the_model(
    custodian: Custodian, sealed: Sealed, digits_model: DigitsModel
) -> None:
    """No custodian answer: serving stops when the grant expires; the model goes at the
    hard expiry; before that, a new grant brings serving back."""
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    runtime = booted.runtime
    row = digits_model.test_inputs[:1]
    with (
        running_node(custodian, booted, renew=False) as node,
        httpx.Client(base_url=node.url) as http,
    ):
        assert infer(http, row).status_code == 200
        custodian.clock.advance(timedelta(seconds=31))  # past valid_until (TTL 30 s)
        refused = infer(http, row)
        assert (refused.status_code, refused.json()["reason"]) == (503, "grant_expired")
        assert not booted.engine.closed
        with httpx.Client(base_url=custodian.url) as chttp:  # the custodian answers again
            report = runtime.report(now=custodian.clock())
            runtime.answered(CustodianClient(chttp).renew(report.to_json()), now=custodian.clock())
        assert infer(http, row).status_code == 200
        grant = runtime.keeper.grant
        assert grant is not None
        custodian.clock.now = parse_timestamp(grant.hard_expiry_at)  # no answer until then
        assert runtime.enforce(custodian.clock())
        assert booted.engine.closed
        refused = infer(http, row)
        assert (refused.status_code, refused.json()["reason"]) == (503, "expired")


def test_attestation_shows_fresh_evidence_and_the_signed_manifest(
    custodian: Custodian, sealed: Sealed
) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    nonce = Nonce(bytes(range(32)))
    with (
        running_node(custodian, booted, renew=False) as node,
        httpx.Client(base_url=node.url) as http,
    ):
        document = http.get("/attestation", params={"nonce": nonce.hex()}).json()
        bad = http.get("/attestation", params={"nonce": "xyz"})
    assert bad.status_code == 400
    assert document["insecure"] is True
    assert document["lease_id"] == "lease-node"
    assert document["status"] == "serving"
    evidence = Evidence.from_json(canonical_json(document["evidence"]))
    verified = appraise(
        evidence,
        policy=policy_from_mapping(dev_policy(config)),
        expected_nonce=nonce,
        now=custodian.clock(),
    )
    assert verified.signing_key == booted.signing_public_key
    assert verified.insecure
    manifest = verify_manifest(
        SignedManifest(
            raw=base64.b64decode(document["manifest"]),
            signature=bytes.fromhex(document["manifest_signature"]),
        ),
        trusted_custodians=[custodian.home.public_key],
        header_version=1,
    )
    assert manifest.bundle_id == sealed.bundle_id


def test_metrics_are_counts_only(
    custodian: Custodian, sealed: Sealed, digits_model: DigitsModel
) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    with (
        running_node(custodian, booted, renew=False) as node,
        httpx.Client(base_url=node.url) as http,
    ):
        infer(http, digits_model.test_inputs[:3])
        text = http.get("/metrics").text
    assert 'modellease_requests_total{instance_id="' in text
    assert "modellease_used_units" in text
    line = next(x for x in text.splitlines() if x.startswith("modellease_requests_total"))
    assert line.endswith(" 1.0")


def test_an_engine_closed_under_a_request_answers_503_and_charges_nothing(
    custodian: Custodian, sealed: Sealed, digits_model: DigitsModel
) -> None:
    """A kill closes the engine while a request already admitted is on its way."""
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    with (
        running_node(custodian, booted, renew=False) as node,
        httpx.Client(base_url=node.url) as http,
    ):
        booted.engine.close()  # the keeper has not heard of it yet: admission still passes
        answer = infer(http, digits_model.test_inputs[:1])
    assert (answer.status_code, answer.json()["reason"]) == (503, "engine_stopped")
    usage = booted.runtime.meter.usage()
    assert (usage.used, usage.reserved, usage.requests) == (0, 0, 0)


def test_a_compressed_archive_that_would_unpack_too_large_is_refused(
    custodian: Custodian, sealed: Sealed
) -> None:
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    bomb = io.BytesIO()
    np.savez_compressed(bomb, X=np.zeros((300_000, 64), dtype=np.float64))  # 150 MiB of zeros
    assert len(bomb.getvalue()) < 1024 * 1024
    with (
        running_node(custodian, booted, renew=False) as node,
        httpx.Client(base_url=node.url) as http,
    ):
        answer = http.post("/v1/infer", content=bomb.getvalue(), headers={"content-type": NPZ})
        enrolment = http.get("/attestation").json()
    assert (answer.status_code, answer.json()["reason"]) == (400, "bad_inference_input")
    assert "unpacks to" in answer.json()["detail"]
    assert booted.runtime.meter.usage().reserved == 0
    # without a nonce, /attestation shows the evidence the custodian appraised at enrolment
    assert canonical_json(enrolment["evidence"]) == booted.enrolment_evidence


def test_the_node_asks_no_tracer_provider(
    custodian: Custodian,
    sealed: Sealed,
    digits_model: DigitsModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The borrower's environment cannot switch on request spans inside the node."""
    spy = SpyTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: spy)
    config = node_config(custodian)
    booted = boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
    with (
        running_node(custodian, booted, renew=False) as node,
        httpx.Client(base_url=node.url) as http,
    ):
        assert infer(http, digits_model.test_inputs[:1]).status_code == 200
        assert http.get("/healthz").status_code == 200
    assert spy.asked == 0
