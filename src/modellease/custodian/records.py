"""Converting between store rows and the ledger's immutable states. No decisions here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Protocol

from modellease.custodian.ledger import InstanceState, InstanceStatus, LeaseState, LeaseTerms, Unit
from modellease.custodian.store import InstanceRow, LeaseRow


class LeaseFields(Protocol):
    """What the ledger needs of a lease's row: an ORM row or a Core result row."""

    id: str
    unit: str
    slice_size: int
    heartbeat_ttl_s: int
    hard_expiry_s: int
    ends_at: datetime
    budget: int
    paused: bool
    killed: bool
    committed: int
    settled: int
    active_usage: int


def lease_terms(row: LeaseFields) -> LeaseTerms:
    return LeaseTerms(
        unit=Unit(row.unit),
        slice_size=row.slice_size,
        heartbeat_ttl=timedelta(seconds=row.heartbeat_ttl_s),
        hard_expiry=timedelta(seconds=row.hard_expiry_s),
        ends_at=row.ends_at,
    )


def lease_state(row: LeaseFields) -> LeaseState:
    return LeaseState(
        lease_id=row.id,
        terms=lease_terms(row),
        budget=row.budget,
        paused=row.paused,
        killed=row.killed,
        committed=row.committed,
        settled=row.settled,
        active_usage=row.active_usage,
    )


LEASE_LEDGER_COLUMNS: Final = ("budget", "paused", "killed", "committed", "settled", "active_usage")
"""The lease columns the ledger changes, named as the fields of its ``LeaseState``."""

INSTANCE_LEDGER_COLUMNS: Final = (
    "status",
    "allowance",
    "usage",
    "grant_seq",
    "valid_until",
    "paused",
    "ended_at",
)
"""The instance columns the ledger changes, named as the fields of its ``InstanceState``."""


def lease_values(state: LeaseState) -> dict[str, object]:
    """The lease columns the ledger decides (totals and flags), as written to the store."""
    return {column: getattr(state, column) for column in LEASE_LEDGER_COLUMNS}


def store_lease(row: LeaseRow, state: LeaseState) -> None:
    """Write the ledger's new lease totals and flags back into ``row``."""
    for column, value in lease_values(state).items():
        setattr(row, column, value)


class InstanceFields(Protocol):
    """What the ledger needs of an instance's row: an ORM row or a Core result row."""

    id: str
    lease_id: str
    status: str
    allowance: int
    usage: int
    grant_seq: int
    valid_until: datetime
    paused: bool
    enrolled_at: datetime
    ended_at: datetime | None


def instance_state(row: InstanceFields) -> InstanceState:
    return InstanceState(
        instance_id=row.id,
        lease_id=row.lease_id,
        status=InstanceStatus(row.status),
        allowance=row.allowance,
        usage=row.usage,
        grant_seq=row.grant_seq,
        valid_until=row.valid_until,
        paused=row.paused,
        enrolled_at=row.enrolled_at,
        ended_at=row.ended_at,
    )


def instance_values(state: InstanceState) -> dict[str, object]:
    """The instance columns the ledger decides, as written to the store."""
    values = {column: getattr(state, column) for column in INSTANCE_LEDGER_COLUMNS}
    values["status"] = state.status.value  # stored as its text
    return values


def store_instance(row: InstanceRow, state: InstanceState) -> None:
    """Write the ledger's new instance state back into ``row``."""
    for column, value in instance_values(state).items():
        setattr(row, column, value)
