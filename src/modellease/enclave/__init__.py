"""The enclave node's trust kernels: the lease keeper (may this node serve, and until when)
and the meter (reserve before work, settle after). Pure: the node's I/O shell calls them."""

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

__all__ = [
    "ADMITTED",
    "Admission",
    "AllowanceExhaustedError",
    "GrantRefusedError",
    "GrantSequenceError",
    "LeaseKeeper",
    "Meter",
    "NodeStoppedError",
    "Reservation",
    "Usage",
    "estimated_flops",
]
