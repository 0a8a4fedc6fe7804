"""Telemetry: the instance's signed, sequence-numbered, hash-chained usage reports.

A pure kernel: no I/O; the clock is a parameter. Rules:

* every report is signed by the instance's attested signing key, numbered ``1, 2, 3 ...``,
  and names the SHA-256 of the previous signed report (64 zeros for the first), exactly
  what the custodian checks (``protocol.check_report_chain``);
* reports carry counts only (requests, prompt and completion tokens, estimated FLOPs,
  refusals; from the meter), never a prompt or an output;
* counts never go down from one report to the next: a decrease is a bug in the caller and
  raises ``ValueError`` before anything is signed;
* a report that was not answered must be sent again as it is (the custodian answers a retry
  with its stored answer); :meth:`ReportChain.next_report` always makes a new one, so the
  caller keeps the last one until it is answered (:attr:`ReportChain.last`).
"""

from __future__ import annotations

from datetime import datetime

from modellease._hazmat import SigningKey
from modellease.enclave.meter import Usage
from modellease.protocol import (
    SignedDocument,
    UsageCounters,
    UsageReport,
    format_timestamp,
    sign_message,
)
from modellease.protocol.messages import GENESIS_REPORT_SHA256


def counters_of(usage: Usage) -> UsageCounters:
    """The meter's cumulative counts as a report carries them."""
    return UsageCounters(
        requests=usage.requests,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        estimated_flops=usage.estimated_flops,
        refusals=usage.refusals,
    )


class ReportChain:
    """The chain of one instance's usage reports (see the module docstring)."""

    def __init__(self, *, lease_id: str, instance_id: str, signer: SigningKey) -> None:
        self.lease_id = lease_id
        self.instance_id = instance_id
        self._signer = signer
        self._seq = 0
        self._previous = GENESIS_REPORT_SHA256
        self._counters: UsageCounters | None = None
        self.last: SignedDocument | None = None

    @property
    def seq(self) -> int:
        """The number of the last report made (0 before the first)."""
        return self._seq

    def next_report(self, counters: UsageCounters, *, now: datetime) -> SignedDocument:
        """Sign the next report with these cumulative counts; it becomes :attr:`last`."""
        if self._counters is not None and (down := counters.decreased_from(self._counters)):
            raise ValueError(f"counters never go down: {', '.join(down)} did")
        report = UsageReport(
            lease_id=self.lease_id,
            instance_id=self.instance_id,
            seq=self._seq + 1,
            previous_report_sha256=self._previous,
            counters=counters,
            reported_at=format_timestamp(now),
        )
        signed = sign_message(report, signer=self._signer)
        self._seq, self._previous, self._counters = report.seq, signed.digest(), counters
        self.last = signed
        return signed
