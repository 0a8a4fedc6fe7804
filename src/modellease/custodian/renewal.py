"""Renewals, many per transaction: verify, store and answer usage reports (group commit).

A heartbeat is the control plane's hot path: every node sends one every TTL/3. Committing
each one alone costs a durable commit and a turn of the audit log's lock per report, so
renewals that arrive together are taken together: one transaction, one commit, one turn of
the log's lock, a handful of statements for the whole batch.

Rules:

* instances are found by the fingerprint of the key that signed the envelope, never by the
  unverified payload; their leases are locked in ``id`` order, then the instances, so a
  batch and any other operation (which locks its lease first) never deadlock;
* each report is judged on its own: signature, chain, ledger. A refused report changes
  nothing and its refusal is its own answer: the others in the batch go on;
* reports of one instance in one batch are taken in arrival order, each seeing the state
  the previous one left (a retry of a report accepted earlier in the batch gets its answer);
* a report is stored with its answer, and its audit entry, before any answer is sent;
* decisions are taken by the pure kernels only (``verify_report``, ``check_report_chain``,
  the ledger); the clock is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from modellease._hazmat import SigningKey
from modellease.custodian import audit, ledger
from modellease.custodian.records import instance_state, lease_state, store_instance, store_lease
from modellease.custodian.store import GrantRow, InstanceRow, LeaseRow, OrderRow, ReportRow
from modellease.errors import InvalidInputError
from modellease.keys import InstanceSigningKey
from modellease.protocol import (
    Grant,
    RenewResponse,
    SignedDocument,
    UsageReport,
    check_report_chain,
    format_timestamp,
    sign_message,
    verify_report,
)
from modellease.protocol.messages import DuplicateReportError

MAX_BATCH = 256  # reports per transaction: bounds the statement sizes and a batch's latency


class UnknownReporterError(InvalidInputError):
    """The report is signed by a key no enrolled instance holds."""

    reason = "unknown_instance_key"


@dataclass(frozen=True, slots=True)
class RenewalRequest:
    """A signed usage report as received, and when it was received."""

    signed: SignedDocument
    now: datetime


Outcome = RenewResponse | InvalidInputError
"""The answer to one report: a response, or the typed refusal to send instead."""


def sign_grant(
    signer: SigningKey, lease: LeaseRow, grant: ledger.Grant, now: datetime
) -> SignedDocument:
    """The custodian-signed wire form of a grant the ledger issued."""
    message = Grant(
        lease_id=lease.id,
        instance_id=grant.instance_id,
        bundle_id=lease.bundle_id,
        seq=grant.seq,
        allowance=grant.allowance,
        unit=grant.unit.value,
        issued_at=format_timestamp(now),
        valid_until=format_timestamp(grant.valid_until),
        hard_expiry_at=format_timestamp(grant.valid_until + timedelta(seconds=lease.hard_expiry_s)),
    )
    return sign_message(message, signer=signer)


def grant_row(grant: ledger.Grant, signed: SignedDocument, now: datetime) -> GrantRow:
    return GrantRow(
        instance_id=grant.instance_id,
        seq=grant.seq,
        signed_json=signed.to_json().decode(),
        issued_at=now,
    )


def usage_in_units(unit: ledger.Unit, report: UsageReport) -> int:
    """The report's cumulative usage in the lease's unit."""
    c = report.counters
    if unit is ledger.Unit.REQUESTS:
        return c.requests
    if unit is ledger.Unit.TOKENS:
        return c.prompt_tokens + c.completion_tokens
    return c.estimated_flops


@dataclass
class _Batch:
    """The rows a batch works on, loaded (and locked) once, updated in memory as it goes."""

    leases: dict[str, LeaseRow]
    instances: dict[str, InstanceRow]  # by signing key fingerprint
    reports: dict[tuple[str, int], ReportRow]  # last accepted report of each instance
    orders: dict[str, list[OrderRow]]  # by lease, in order
    entries: list[audit.NewEntry]


def _load(session: Session, requests: Sequence[RenewalRequest]) -> _Batch:
    key_ids = sorted({r.signed.key_id for r in requests})
    lease_ids = sorted(
        set(
            session.scalars(
                select(InstanceRow.lease_id).where(InstanceRow.signing_key_id.in_(key_ids))
            )
        )
    )
    leases = session.scalars(
        select(LeaseRow).where(LeaseRow.id.in_(lease_ids)).order_by(LeaseRow.id).with_for_update()
    )
    instances = session.scalars(
        select(InstanceRow)
        .where(InstanceRow.signing_key_id.in_(key_ids))
        .order_by(InstanceRow.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    last = [(i.id, i.last_report_seq) for i in instances if i.last_report_seq > 0]
    reports: Sequence[ReportRow] = []
    if last:
        pairs = tuple_(ReportRow.instance_id, ReportRow.seq).in_(last)
        reports = session.scalars(select(ReportRow).where(pairs)).all()
    orders: dict[str, list[OrderRow]] = {lease_id: [] for lease_id in lease_ids}
    for order in session.scalars(
        select(OrderRow).where(OrderRow.lease_id.in_(lease_ids)).order_by(OrderRow.seq)
    ):
        orders[order.lease_id].append(order)
    return _Batch(
        leases={lease.id: lease for lease in leases},
        instances={i.signing_key_id: i for i in instances},
        reports={(r.instance_id, r.seq): r for r in reports},
        orders=orders,
        entries=[],
    )


def renew_batch(
    session: Session, requests: Sequence[RenewalRequest], *, signer: SigningKey
) -> list[Outcome]:
    """Judge and record every report of ``requests`` in the caller's transaction.

    Returns one outcome per request, in order. The caller commits; nothing may be answered
    before that commit succeeds.
    """
    batch = _load(session, requests)
    outcomes: list[Outcome] = []
    for request in requests:
        try:
            outcomes.append(_renew_one(session, batch, request, signer))
        except InvalidInputError as exc:
            outcomes.append(exc)
    audit.append_many(session, batch.entries)
    return outcomes


def _renew_one(
    session: Session, batch: _Batch, request: RenewalRequest, signer: SigningKey
) -> RenewResponse:
    signed, now = request.signed, request.now
    instance = batch.instances.get(signed.key_id)
    if instance is None:
        raise UnknownReporterError("the message is signed by no enrolled instance's key")
    lease = batch.leases[instance.lease_id]
    report = verify_report(
        signed,
        instance_key=InstanceSigningKey(bytes.fromhex(instance.signing_key)),
        lease_id=lease.id,
        instance_id=instance.id,
    )
    previous = batch.reports.get((instance.id, instance.last_report_seq))
    previous_signed = SignedDocument.from_json(previous.signed_json.encode()) if previous else None
    previous_report = (
        UsageReport.model_validate_json(previous_signed.payload) if previous_signed else None
    )
    try:
        check_report_chain(previous_signed, previous_report, signed, report)
    except DuplicateReportError:
        assert previous is not None  # a duplicate of nothing cannot be
        return RenewResponse.model_validate_json(previous.response_json)
    response, granted = _answer(
        batch, lease=lease, instance=instance, report=report, now=now, signer=signer
    )
    signed_grant = response.grant
    row = ReportRow(
        instance_id=instance.id,
        seq=report.seq,
        digest=signed.digest(),
        signed_json=signed.to_json().decode(),
        response_json=response.model_dump_json(),
        received_at=now,
    )
    session.add(row)
    if granted is not None and signed_grant is not None:
        session.add(grant_row(granted, signed_grant, now))
    batch.reports[(instance.id, report.seq)] = row
    instance.last_report_seq = report.seq
    instance.last_report_digest = row.digest
    detail: dict[str, object] = {
        "instance_id": instance.id,
        "seq": report.seq,
        "counters": report.counters.model_dump(mode="json"),
    }
    if granted is not None:
        detail["grant"] = {"seq": granted.seq, "allowance": str(granted.allowance)}
    else:
        detail["withheld"] = response.withheld
    batch.entries.append(
        audit.NewEntry(
            kind="usage_report",
            actor=instance.signing_key_id,
            lease_id=lease.id,
            detail=detail,
            at=now,
        )
    )
    return response


def _answer(
    batch: _Batch,
    *,
    lease: LeaseRow,
    instance: InstanceRow,
    report: UsageReport,
    now: datetime,
    signer: SigningKey,
) -> tuple[RenewResponse, ledger.Grant | None]:
    """The ledger's decision for this report, applied to the rows in memory."""
    orders = [
        SignedDocument.from_json(o.signed_json.encode())
        for o in batch.orders[lease.id]
        if o.instance_id in (None, instance.id)
    ]
    if lease.killed or instance.status != ledger.InstanceStatus.ACTIVE:
        return RenewResponse(withheld="instance_ended", orders=orders), None
    usage = usage_in_units(ledger.Unit(lease.unit), report)
    renewal = ledger.renew(lease_state(lease), instance_state(instance), usage=usage, now=now)
    store_lease(lease, renewal.lease)
    store_instance(instance, renewal.instance)
    if renewal.grant is None:
        withheld = renewal.withheld.value if renewal.withheld else None
        return RenewResponse(withheld=withheld, orders=orders), None  # type: ignore[arg-type]
    signed_grant = sign_grant(signer, lease, renewal.grant, now)
    return RenewResponse(grant=signed_grant, orders=orders), renewal.grant
