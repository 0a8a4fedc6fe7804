"""The node's measured configuration, request pricing, and the metrics exposition."""

from __future__ import annotations

import json

import pytest

from modellease.enclave.config import NodeConfig, NodeConfigError, render_config
from modellease.enclave.metrics import metrics_text
from modellease.enclave.pricing import onnx_parameters, price
from modellease.enclave.runtime import NodeRuntime
from tests.unit.enclave.test_keeper import T0, grant, keeper
from tests.unit.enclave.test_runtime import INSTANCE, FakeEngine

CUSTODIAN_KEY = bytes(range(32))
OVERSEER_KEY = bytes(range(1, 33))


def test_a_rendered_configuration_parses_back_with_its_exact_bytes() -> None:
    raw = render_config(
        custodian_url="https://custodian.example/",
        custodian_key=CUSTODIAN_KEY,
        overseer_keys=(OVERSEER_KEY,),
    )
    config = NodeConfig.from_bytes(raw)
    assert config.raw == raw
    assert config.custodian_url == "https://custodian.example"
    assert config.custodian_key == CUSTODIAN_KEY
    assert config.overseer_keys == (OVERSEER_KEY,)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"custodian_public_key": "00"}, "custodian_public_key"),
        ({"custodian_url": "ftp://x"}, "custodian_url"),
        ({"overseer_public_keys": ["zz" * 32]}, "overseer_public_keys.0"),
        ({"format": "other/v1"}, "format"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_field(
    change: dict[str, object], where: str
) -> None:
    document = json.loads(render_config(custodian_url="http://c", custodian_key=CUSTODIAN_KEY))
    with pytest.raises(NodeConfigError, match=f"node configuration: {where}"):
        NodeConfig.from_bytes(json.dumps(document | change).encode())


def test_the_custodian_key_cannot_also_be_an_overseer_key() -> None:
    with pytest.raises(NodeConfigError, match="also an overseer"):
        render_config(
            custodian_url="http://c", custodian_key=CUSTODIAN_KEY, overseer_keys=(CUSTODIAN_KEY,)
        )


def test_prices_in_each_unit() -> None:
    assert price("requests", items=500, parameters=10) == 1
    assert price("tokens", items=500, parameters=10) == 500
    assert price("tokens", items=0, parameters=10) == 1
    assert price("flops", items=500, parameters=10) == 2 * 10 * 500
    assert onnx_parameters(21_012) == 5_253
    assert onnx_parameters(3) == 1
    with pytest.raises(ValueError, match="unknown unit"):
        price("watts", items=1, parameters=1)
    with pytest.raises(ValueError, match="negative"):
        price("tokens", items=-1, parameters=1)


def test_metrics_are_the_runtime_counts() -> None:
    k = keeper()
    k.accept_grant(grant(1, 10), now=T0)
    runtime = NodeRuntime(keeper=k, signer=INSTANCE, engine=FakeEngine())
    runtime.finish(runtime.begin(3, now=T0), units=2, prompt_tokens=7, completion_tokens=4, flops=9)
    text, content_type = metrics_text(runtime.status(T0), model="digits")
    assert content_type.startswith("text/plain")
    lines = dict(
        line.rsplit(" ", 1) for line in text.decode().splitlines() if not line.startswith("#")
    )
    labels = '{instance_id="inst-1",lease_id="lease-1",model="digits"}'
    assert lines[f"modellease_requests_total{labels}"] == "1.0"
    assert lines[f"modellease_prompt_tokens_total{labels}"] == "7.0"
    assert lines[f"modellease_completion_tokens_total{labels}"] == "4.0"
    assert lines[f"modellease_estimated_flops_total{labels}"] == "9.0"
    assert lines[f"modellease_used_units{labels}"] == "2.0"
    assert lines[f"modellease_allowance_units{labels}"] == "10.0"
    assert lines[f"modellease_serving{labels}"] == "1.0"
