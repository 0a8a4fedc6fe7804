"""The meter: reserve a request's maximum cost before it runs, settle its real cost after.

A pure kernel (no I/O, no clock); the node's handlers call it. Rules:

* units are the lease's (requests, tokens or FLOPs); the caller prices a request in them;
* ``allowance`` is the instance's cumulative allowance from its latest grant; it never goes
  down (a grant with a smaller one is the lease keeper's business to refuse);
* **invariant:** ``used + reserved <= allowance`` at every moment. :meth:`Meter.reserve`
  checks and reserves in one step under a lock, so no interleaving of concurrent requests,
  on threads or tasks, can start work beyond the allowance;
* a request that cannot be reserved is refused (:class:`AllowanceExhaustedError`, HTTP 429)
  and never started; it is counted in ``refusals``;
* :meth:`Meter.settle` charges the real cost, at most what was reserved, and releases the
  rest; :meth:`Meter.release` gives a reservation back unused (the work never ran). A
  reservation is closed exactly once;
* counters (requests, prompt and completion tokens, estimated FLOPs, refusals) only grow;
  they are what the node reports, never any prompt or output.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

from modellease.errors import InvalidInputError

FLOPS_PER_PARAMETER_PER_TOKEN = 2  # a forward pass costs about 2 x parameters per token


class AllowanceExhaustedError(InvalidInputError):
    """The request would take usage beyond the current grant's allowance."""

    reason = "allowance_exhausted"


def estimated_flops(parameters: int, tokens: int) -> int:
    """FLOPs of a forward pass over ``tokens`` tokens: about 2 x parameters x tokens."""
    if parameters < 0 or tokens < 0:
        raise ValueError("parameters and tokens cannot be negative")
    return FLOPS_PER_PARAMETER_PER_TOKEN * parameters * tokens


@dataclass(frozen=True, slots=True)
class Reservation:
    """Units set aside for one request until it is settled or released."""

    id: int
    units: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """What the meter has counted so far (cumulative), as the node reports it."""

    allowance: int
    used: int
    reserved: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    estimated_flops: int
    refusals: int

    @property
    def available(self) -> int:
        return self.allowance - self.used - self.reserved


class Meter:
    """Atomic reserve / settle against an allowance (see the module docstring)."""

    def __init__(self, *, allowance: int = 0) -> None:
        if allowance < 0:
            raise ValueError("an allowance cannot be negative")
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._open: dict[int, int] = {}  # reservation id -> units
        self._allowance = allowance
        self._used = 0
        self._reserved = 0  # the sum of self._open's units
        self._requests = self._prompt = self._completion = self._flops = self._refusals = 0

    def set_allowance(self, allowance: int) -> None:
        """Raise the allowance to a new grant's (cumulative) figure; never lower it."""
        with self._lock:
            if allowance < self._allowance:
                raise ValueError("an allowance never goes down")
            self._allowance = allowance

    def reserve(self, units: int) -> Reservation:
        """Set ``units`` aside for a request, or refuse it (nothing reserved, one refusal)."""
        if units <= 0:
            raise ValueError("a request reserves at least one unit")
        with self._lock:
            available = self._allowance - self._used - self._reserved
            if units > available:
                self._refusals += 1
                raise AllowanceExhaustedError(
                    f"this request needs up to {units} units; the grant has {available} left"
                )
            reservation = Reservation(id=next(self._ids), units=units)
            self._open[reservation.id] = units
            self._reserved += units
            return reservation

    def settle(
        self,
        reservation: Reservation,
        *,
        units: int,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        flops: int = 0,
    ) -> None:
        """Charge ``units`` (at most the reservation's) for a request that ran."""
        if not 0 <= units <= reservation.units:
            raise ValueError(f"settle between 0 and the {reservation.units} units reserved")
        if min(prompt_tokens, completion_tokens, flops) < 0:
            raise ValueError("counts cannot be negative")
        with self._lock:
            self._close(reservation)
            self._used += units
            self._requests += 1
            self._prompt += prompt_tokens
            self._completion += completion_tokens
            self._flops += flops

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back unused: the request never ran."""
        with self._lock:
            self._close(reservation)

    def _close(self, reservation: Reservation) -> None:
        if self._open.get(reservation.id) != reservation.units:
            raise ValueError("this reservation is not open (settled or released already?)")
        del self._open[reservation.id]
        self._reserved -= reservation.units

    def usage(self) -> Usage:
        with self._lock:
            return Usage(
                allowance=self._allowance,
                used=self._used,
                reserved=self._reserved,
                requests=self._requests,
                prompt_tokens=self._prompt,
                completion_tokens=self._completion,
                estimated_flops=self._flops,
                refusals=self._refusals,
            )
