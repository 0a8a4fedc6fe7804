"""Prometheus metrics of a node: counts and state only, never content.

Rendered at each scrape from the runtime's :class:`~modellease.enclave.runtime.Status`
into a registry of its own (nothing global), so two nodes in one process never mix.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from modellease.enclave.runtime import Status


def metrics_text(status: Status, *, model: str) -> tuple[bytes, str]:
    """The Prometheus text exposition of ``status``, and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    labels = {"lease_id": status.lease_id, "instance_id": status.instance_id, "model": model}
    names = list(labels)
    usage = status.usage
    counters = {
        "modellease_requests": ("Requests served.", usage.requests),
        "modellease_prompt_tokens": ("Prompt tokens processed.", usage.prompt_tokens),
        "modellease_completion_tokens": ("Completion tokens generated.", usage.completion_tokens),
        "modellease_estimated_flops": ("Estimated forward-pass FLOPs.", usage.estimated_flops),
        "modellease_refusals": ("Requests refused for lack of allowance.", usage.refusals),
        "modellease_usage_reports": ("Signed usage reports made.", status.reports),
    }
    for name, (text, value) in counters.items():
        Counter(name, text, names, registry=registry).labels(**labels).inc(value)
    gauges = {
        "modellease_allowance_units": (
            "Cumulative allowance of the current grant.",
            usage.allowance,
        ),
        "modellease_used_units": ("Units charged so far.", usage.used),
        "modellease_reserved_units": ("Units reserved by running requests.", usage.reserved),
        "modellease_grant_seq": ("Sequence number of the current grant.", status.grant_seq),
        "modellease_serving": ("1 while the node admits requests.", int(status.admission.allowed)),
        "modellease_model_loaded": (
            "1 while the engine holds the model.",
            int(status.model_loaded),
        ),
    }
    for name, (text, value) in gauges.items():
        Gauge(name, text, names, registry=registry).labels(**labels).set(value)
    return generate_latest(registry), CONTENT_TYPE_LATEST
