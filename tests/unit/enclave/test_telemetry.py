"""The node's usage reports chain exactly as the custodian checks them, and carry counts only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from modellease._hazmat import SigningKey
from modellease.enclave import Meter
from modellease.enclave.telemetry import ReportChain, counters_of
from modellease.keys import InstanceSigningKey
from modellease.protocol import UsageCounters, check_report_chain, verify_report
from modellease.protocol.messages import GENESIS_REPORT_SHA256

KEY = SigningKey.from_seed(b"\x05" * 32)
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def chain() -> ReportChain:
    return ReportChain(lease_id="lease-1", instance_id="inst-1", signer=KEY)


def test_reports_chain_as_the_custodian_checks_them() -> None:
    c, meter = chain(), Meter(allowance=100)
    previous = previous_report = None
    for step in range(1, 5):
        meter.settle(meter.reserve(3), units=2, prompt_tokens=7, completion_tokens=2, flops=99)
        signed = c.next_report(counters_of(meter.usage()), now=T0 + timedelta(seconds=step))
        report = verify_report(
            signed,
            instance_key=InstanceSigningKey(KEY.public_bytes()),
            lease_id="lease-1",
            instance_id="inst-1",
        )
        check_report_chain(previous, previous_report, signed, report)  # raises if broken
        assert (report.seq, c.seq, c.last) == (step, step, signed)
        assert report.counters.requests == step
        assert report.counters.estimated_flops == 99 * step
        previous, previous_report = signed, report
    first = chain().next_report(counters_of(Meter().usage()), now=T0)
    assert first.payload.count(GENESIS_REPORT_SHA256.encode()) == 1


def test_counts_never_go_down_and_a_refused_report_is_not_made() -> None:
    c = chain()
    high = UsageCounters(
        requests=5, prompt_tokens=5, completion_tokens=5, estimated_flops=5, refusals=0
    )
    c.next_report(high, now=T0)
    last = c.last
    low = high.model_copy(update={"requests": 4, "refusals": 1})
    with pytest.raises(ValueError, match="counters never go down: requests did"):
        c.next_report(low, now=T0)
    assert (c.seq, c.last) == (1, last)


def test_reports_hold_counts_only() -> None:
    signed = chain().next_report(counters_of(Meter().usage()), now=T0)
    assert set(json.loads(signed.payload)) == {
        "lease_id",
        "instance_id",
        "seq",
        "previous_report_sha256",
        "counters",
        "reported_at",
    }
