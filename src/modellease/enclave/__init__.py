"""The enclave node's trust kernels: the lease keeper (may this node serve, and until when),
the meter (reserve before work, settle after) and the report chain (signed, numbered,
chained usage). Pure: the node's I/O shell calls them."""

from modellease.enclave.keeper import (
    ADMITTED,
    Admission,
    GrantRefusedError,
    GrantSequenceError,
    LeaseKeeper,
    NodeStoppedError,
)
from modellease.enclave.meter import (
    AllowanceExhaustedError,
    Meter,
    Reservation,
    Usage,
    estimated_flops,
)
from modellease.enclave.telemetry import ReportChain, counters_of

__all__ = [
    "ADMITTED",
    "Admission",
    "AllowanceExhaustedError",
    "GrantRefusedError",
    "GrantSequenceError",
    "LeaseKeeper",
    "Meter",
    "NodeStoppedError",
    "ReportChain",
    "Reservation",
    "Usage",
    "counters_of",
    "estimated_flops",
]
