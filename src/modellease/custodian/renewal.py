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
* a report is stored with its answer, and its audit entry, before any answer is sent; the
  answer sent is the stored JSON itself, so a retry gets the very same bytes;
* decisions are taken by the pure kernels only (``verify_report``, ``check_report_chain``,
  the ledger); the clock is a parameter;
* work that needs no shared state is done before the locks, by :func:`prepare`, so that the
  locks (one writer at a time on SQLite) are held as briefly as possible:

  - a report's signature is checked when this process already knows its signer's key, and
    the result is used only if the instance found under the lock is the one it was checked
    for;
  - the grant the ledger would issue is worked out from the states this process saw last,
    and signed (a *speculative* grant). Under the lock the ledger decides again from the
    locked rows; the signed grant is used only if its decision is equal to the speculative
    one (:class:`GrantDecision`: all that a grant's message is made of), which makes it the
    very document signing then would give (Ed25519 signatures are deterministic).
    Otherwise the decided grant is signed under the lock. A speculative grant that is not
    used is dropped unsent;
* three per-process caches (an instance's key; its last accepted report; the ledger states
  after its last renewal) save parsing and signing under the lock. They are keyed by what
  cannot change or by what the locked row says (sequence and digest), or only ever feed a
  speculation that the locked rows confirm, so a stale entry is never used, only missed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, NamedTuple, TypeVar, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, tuple_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import BindParameter

from modellease._hazmat import SigningKey
from modellease.custodian import audit, ledger
from modellease.custodian.records import (
    INSTANCE_LEDGER_COLUMNS,
    LEASE_LEDGER_COLUMNS,
    instance_state,
    instance_values,
    lease_state,
    lease_values,
)
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
from modellease.protocol.messages import MAX_ORDERS_PER_RESPONSE, DuplicateReportError

MAX_BATCH = 256  # reports per transaction: bounds the statement sizes and a batch's latency
CACHED_INSTANCES = 65_536  # instances whose key and last report this process keeps


K = TypeVar("K")
V = TypeVar("V")


class UnknownReporterError(InvalidInputError):
    """The report is signed by a key no enrolled instance holds."""

    reason = "unknown_instance_key"


@dataclass(frozen=True, slots=True)
class RenewalRequest:
    """A signed usage report as received, its canonical wire form, and when it was received.

    Made by :meth:`received` or :meth:`of`, which keep ``wire == signed.to_json()``: the bytes
    stored are those of the document verified.
    """

    signed: SignedDocument
    now: datetime
    wire: bytes  # ``signed.to_json()``: the bytes stored

    @classmethod
    def received(cls, raw: bytes, now: datetime) -> RenewalRequest:
        """Parse a report's wire form. ``SignedDocument.from_json`` admits only the canonical
        form, which is the one ``to_json`` writes, so ``raw`` is kept as the wire form."""
        return cls(SignedDocument.from_json(raw), now, bytes(raw))

    @classmethod
    def of(cls, signed: SignedDocument, now: datetime) -> RenewalRequest:
        """A request for a report already parsed (in-process callers)."""
        return cls(signed, now, signed.to_json())


Outcome = str | InvalidInputError
"""The answer to one report: a :class:`RenewResponse`'s JSON, exactly as stored and sent (a
retry gets the very same bytes), or the typed refusal to send instead."""


class GrantDecision(NamedTuple):
    """A grant as the ledger decided it: all its signed message is made of (:func:`sign_grant`)."""

    bundle_id: str
    lease_id: str
    hard_expiry: timedelta
    grant: ledger.Grant
    now: datetime


def grant_decision(
    *, bundle_id: str, lease: ledger.LeaseState, grant: ledger.Grant, now: datetime
) -> GrantDecision:
    """The decision behind a grant the ledger issued for ``lease`` at ``now``."""
    return GrantDecision(bundle_id, lease.lease_id, lease.terms.hard_expiry, grant, now)


def sign_grant(signer: SigningKey, decision: GrantDecision) -> SignedDocument:
    """The custodian-signed grant message of a decision: made of the decision alone, so
    equal decisions give the same signed document (Ed25519 signatures are deterministic)."""
    grant = decision.grant
    message = Grant(
        lease_id=decision.lease_id,
        instance_id=grant.instance_id,
        bundle_id=decision.bundle_id,
        seq=grant.seq,
        allowance=grant.allowance,
        unit=grant.unit.value,
        issued_at=format_timestamp(decision.now),
        valid_until=format_timestamp(grant.valid_until),
        hard_expiry_at=format_timestamp(grant.valid_until + decision.hard_expiry),
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


@dataclass(frozen=True, slots=True)
class _Accepted:
    """An accepted report: its stored form, parsed, and the answer it was given."""

    signed: SignedDocument
    report: UsageReport
    response_json: str


class _Lru(Generic[K, V]):
    """A bounded map, least recently stored out first, safe to share between threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


@dataclass(frozen=True, slots=True)
class _KnownKey:
    instance_id: str
    lease_id: str
    signing_key: str  # hex


@dataclass(frozen=True, slots=True)
class _Seen:
    """An instance's ledger state and its lease's, as this process's last batch left them."""

    bundle_id: str
    lease: ledger.LeaseState
    instance: ledger.InstanceState


@dataclass(frozen=True, slots=True)
class _Caches:
    """What one process remembers between batches (see the module doc)."""

    # Which instance holds which signing key, by key fingerprint. An instance's id, lease
    # and signing key never change once enrolled, so this may be used outside any
    # transaction: it lets a report's signature be checked before the batch takes its locks.
    keys: _Lru[str, _KnownKey]
    # The last accepted report of an instance, parsed, by (instance id, seq, digest). A
    # renewal checks the new report against the previous one; parsing that one again costs
    # as much as parsing the new one. An entry is used only if its instance, sequence number
    # *and* digest are those in the instance's locked row, so a stale entry can never be
    # mistaken for the real predecessor: at worst it is not found, and the store is read.
    last_reports: _Lru[tuple[str, int, str], _Accepted]
    # The states after an instance's last renewal here, by key fingerprint: they only feed
    # a speculative grant, which is used only if the locked rows lead to the same one.
    seen: _Lru[str, _Seen]


def new_caches() -> _Caches:
    """Empty caches, as a process starts with."""
    return _Caches(
        keys=_Lru(CACHED_INSTANCES),
        last_reports=_Lru(CACHED_INSTANCES),
        seen=_Lru(CACHED_INSTANCES),
    )


_CACHES = new_caches()  # this process's; entries are stored only once their batch committed


@dataclass(frozen=True, slots=True)
class _Speculation:
    """A grant signed before the lock, its wire form, and the answer carrying it alone."""

    decision: GrantDecision
    signed: SignedDocument
    signed_json: str
    response_json: str


@dataclass(frozen=True, slots=True)
class Prepared:
    """What :func:`prepare` worked out for one report before the batch's locks."""

    stored_json: str  # the report's canonical wire form, as stored
    digest: str
    report: UsageReport | None = None  # verified with the key of the instance this names
    refusal: InvalidInputError | None = None  # the report can only be refused
    speculation: _Speculation | None = None


def prepare(request: RenewalRequest, *, signer: SigningKey) -> Prepared:
    """Everything about ``request`` that needs neither the store nor a lock.

    Pure apart from the caches: call it outside the transaction. If this process does not
    know the signer's key, only the report's stored form is prepared; the batch then
    verifies the report itself, under its lock.
    """
    signed = request.signed
    stored_json, digest = request.wire.decode(), signed.digest()
    known = _CACHES.keys.get(signed.key_id)
    if known is None:
        return Prepared(stored_json, digest)
    try:
        report = verify_report(
            signed,
            instance_key=InstanceSigningKey(bytes.fromhex(known.signing_key)),
            lease_id=known.lease_id,
            instance_id=known.instance_id,
        )
    except InvalidInputError as exc:
        return Prepared(stored_json, digest, refusal=exc)
    return Prepared(stored_json, digest, report, speculation=_speculate(request, report, signer))


def _speculate(
    request: RenewalRequest, report: UsageReport, signer: SigningKey
) -> _Speculation | None:
    """The grant the ledger would issue if the locked rows are as this process last saw them."""
    seen = _CACHES.seen.get(request.signed.key_id)
    if seen is None:
        return None
    usage = usage_in_units(seen.lease.terms.unit, report)
    try:
        renewal = ledger.renew(seen.lease, seen.instance, usage=usage, now=request.now)
    except ledger.LedgerError:
        return None
    if renewal.grant is None:
        return None
    decision = grant_decision(
        bundle_id=seen.bundle_id, lease=renewal.lease, grant=renewal.grant, now=request.now
    )
    signed = sign_grant(signer, decision)
    response_json = RenewResponse(grant=signed).model_dump_json()
    return _Speculation(decision, signed, signed.to_json().decode(), response_json)


@dataclass(slots=True)
class _Instance:
    """An instance's row as the batch sees it, updated in memory as reports are accepted."""

    id: str
    lease_id: str
    signing_key: str
    signing_key_id: str
    state: ledger.InstanceState
    last_report_seq: int
    last_report_digest: str
    changed: bool = False


@dataclass(slots=True)
class _Lease:
    """A lease as the batch sees it: its bundle, and its ledger state as renewals change it."""

    bundle_id: str
    state: ledger.LeaseState
    changed: bool = False

    @property
    def id(self) -> str:
        return self.state.lease_id


@dataclass
class _Batch:
    """The rows a batch works on, loaded (and locked) once, written back once at the end."""

    leases: dict[str, _Lease]
    instances: dict[str, _Instance]  # by signing key fingerprint
    last: dict[str, _Accepted]  # by instance id: its last accepted report
    orders: dict[str, list[_StoredOrder]]  # by lease, in order
    reports: list[dict[str, object]] = field(default_factory=list)  # rows to insert
    grants: list[dict[str, object]] = field(default_factory=list)
    entries: list[audit.NewEntry] = field(default_factory=list)


def _setting(table: Table, key: str, columns: Iterable[str]) -> Update:
    """``UPDATE table SET`` exactly ``columns`` ``WHERE id = :key``, one row per parameter set."""
    return (
        update(table)
        .where(table.c.id == bindparam(key))
        .values({column: bindparam(column) for column in columns})
    )


# The batch's statements, built once (Core: the rows are plain values, no ORM identity map).
_LEASES = cast(Table, LeaseRow.__table__)
_INSTANCES = cast(Table, InstanceRow.__table__)
_ORDERS = cast(Table, OrderRow.__table__)
_REPORTS = cast(Table, ReportRow.__table__)
_KEYS: BindParameter[list[str]] = bindparam("keys", expanding=True)
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_SELECT_LEASE_IDS = select(_INSTANCES.c.lease_id).where(_INSTANCES.c.signing_key_id.in_(_KEYS))
_LOCK_LEASES = (
    select(_LEASES).where(_LEASES.c.id.in_(_IDS)).order_by(_LEASES.c.id).with_for_update()
)
_LOCK_INSTANCES = (
    select(_INSTANCES)
    .where(_INSTANCES.c.signing_key_id.in_(_KEYS))
    .order_by(_INSTANCES.c.id)
    .with_for_update()
)
_SELECT_ORDERS = (
    select(_ORDERS.c.lease_id, _ORDERS.c.instance_id, _ORDERS.c.kind, _ORDERS.c.signed_json)
    .where(_ORDERS.c.lease_id.in_(_IDS))
    .order_by(_ORDERS.c.seq)
)
_UPDATE_LEASE = _setting(_LEASES, "lease", LEASE_LEDGER_COLUMNS)
_UPDATE_INSTANCE = _setting(
    _INSTANCES, "instance", (*INSTANCE_LEDGER_COLUMNS, "last_report_seq", "last_report_digest")
)
_INSERT_REPORTS = insert(_REPORTS)
_INSERT_GRANTS = insert(cast(Table, GrantRow.__table__))


def _lease_ids(connection: Connection, key_ids: list[str]) -> list[str]:
    """The leases of the instances holding these keys: from the key cache if it knows all."""
    known = [_CACHES.keys.get(k) for k in key_ids]
    if all(k is not None for k in known):
        return sorted({k.lease_id for k in known if k is not None})
    return sorted(set(connection.scalars(_SELECT_LEASE_IDS, {"keys": key_ids})))


def _load(connection: Connection, requests: Sequence[RenewalRequest]) -> _Batch:
    key_ids = sorted({r.signed.key_id for r in requests})
    lease_ids = _lease_ids(connection, key_ids)
    leases = {
        row.id: _Lease(bundle_id=row.bundle_id, state=lease_state(row))
        for row in connection.execute(_LOCK_LEASES, {"ids": lease_ids})
    }
    rows = connection.execute(_LOCK_INSTANCES, {"keys": key_ids}).all()
    for row in rows:
        _CACHES.keys.put(row.signing_key_id, _KnownKey(row.id, row.lease_id, row.signing_key))
    instances = {
        row.signing_key_id: _Instance(
            id=row.id,
            lease_id=row.lease_id,
            signing_key=row.signing_key,
            signing_key_id=row.signing_key_id,
            state=instance_state(row),
            last_report_seq=row.last_report_seq,
            last_report_digest=row.last_report_digest,
        )
        for row in rows
    }
    return _Batch(
        leases=leases,
        instances=instances,
        last=_last_reports(connection, instances.values()),
        orders=_orders(connection, lease_ids),
    )


def _last_reports(connection: Connection, instances: Iterable[_Instance]) -> dict[str, _Accepted]:
    """Each instance's last accepted report: from this process's cache, else the store."""
    found: dict[str, _Accepted] = {}
    missing = []
    for i in instances:
        if i.last_report_seq == 0:
            continue
        cached = _CACHES.last_reports.get((i.id, i.last_report_seq, i.last_report_digest))
        if cached is not None:
            found[i.id] = cached
        else:
            missing.append((i.id, i.last_report_seq))
    if missing:
        pairs = tuple_(ReportRow.instance_id, ReportRow.seq).in_(missing)
        query = select(ReportRow.instance_id, ReportRow.signed_json, ReportRow.response_json)
        for row in connection.execute(query.where(pairs)):
            signed = SignedDocument.from_json(row.signed_json.encode())
            report = UsageReport.model_validate_json(signed.payload)
            found[row.instance_id] = _Accepted(signed, report, row.response_json)
    return found


@dataclass(frozen=True, slots=True)
class _StoredOrder:
    instance_id: str | None  # None: the whole lease
    kind: str
    signed: SignedDocument


def _orders(connection: Connection, lease_ids: list[str]) -> dict[str, list[_StoredOrder]]:
    """Every order of these leases, in order."""
    orders: dict[str, list[_StoredOrder]] = {i: [] for i in lease_ids}
    for row in connection.execute(_SELECT_ORDERS, {"ids": lease_ids}):
        signed = SignedDocument.from_json(row.signed_json.encode())
        orders[row.lease_id].append(_StoredOrder(row.instance_id, row.kind, signed))
    return orders


def orders_for(stored: Sequence[_StoredOrder], instance_id: str) -> list[SignedDocument]:
    """The orders an instance's renewal answer carries, in order.

    All that apply to it, up to ``MAX_ORDERS_PER_RESPONSE``; beyond that, every kill (kill
    is terminal, so none may be left out) and the latest of the others, which supersede the
    older ones (a node applies pause and resume in sequence).
    """
    applicable = [o for o in stored if o.instance_id in (None, instance_id)]
    if len(applicable) > MAX_ORDERS_PER_RESPONSE:
        kills = [o for o in applicable if o.kind == "kill"][:MAX_ORDERS_PER_RESPONSE]
        room = MAX_ORDERS_PER_RESPONSE - len(kills)
        others = [o for o in applicable if o.kind != "kill"]
        others = others[len(others) - room :] if room else []
        keep = {id(o) for o in [*kills, *others]}
        applicable = [o for o in applicable if id(o) in keep]
    return [o.signed for o in applicable]


@dataclass(frozen=True, slots=True)
class _Learned:
    """What one instance's renewals in a batch leave for this process's caches."""

    key_id: str
    last_key: tuple[str, int, str]
    accepted: _Accepted
    seen: _Seen


@dataclass(frozen=True, slots=True)
class BatchResult:
    """:func:`renew_batch`'s decisions: one outcome per request, in order, and what to cache."""

    outcomes: list[Outcome]
    learned: list[_Learned]

    def committed(self) -> None:
        """Remember what the batch stored. Call it only once its transaction has committed."""
        for learned in self.learned:
            _CACHES.last_reports.put(learned.last_key, learned.accepted)
            _CACHES.seen.put(learned.key_id, learned.seen)


def renew_batch(
    session: Session,
    requests: Sequence[RenewalRequest],
    *,
    signer: SigningKey,
    prepared: Sequence[Prepared],
) -> BatchResult:
    """Judge and record every report of ``requests`` in the caller's transaction.

    ``prepared`` holds :func:`prepare`'s result for each request, made before the
    transaction. The caller commits, then calls :meth:`BatchResult.committed`; nothing may
    be answered before that commit succeeds.
    """
    batch = _load(session.connection(), requests)  # Core on the connection: no ORM work
    outcomes: list[Outcome] = []
    for request, early in zip(requests, prepared, strict=True):
        try:
            if early.refusal is not None:
                raise early.refusal
            outcomes.append(_renew_one(batch, request, signer, early))
        except InvalidInputError as exc:
            outcomes.append(exc)
    _write(session, batch)
    learned = [
        _Learned(
            i.signing_key_id,
            (i.id, i.last_report_seq, i.last_report_digest),
            batch.last[i.id],
            _Seen(batch.leases[i.lease_id].bundle_id, batch.leases[i.lease_id].state, i.state),
        )
        for i in batch.instances.values()
        if i.changed
    ]
    return BatchResult(outcomes, learned)


def _write(session: Session, batch: _Batch) -> None:
    """Everything the batch decided, in a few statements: Core bulk inserts and updates.

    Core statements, not the ORM's bulk forms: the rows are plain dicts already, and the
    ORM's per-row bookkeeping was the larger part of the batch's SQL time.
    """
    connection = session.connection()
    leases = [lease for lease in batch.leases.values() if lease.changed]
    if leases:
        connection.execute(
            _UPDATE_LEASE, [{"lease": x.id, **lease_values(x.state)} for x in leases]
        )
    changed = [i for i in batch.instances.values() if i.changed]
    if changed:
        connection.execute(
            _UPDATE_INSTANCE,
            [
                {
                    "instance": i.id,
                    **instance_values(i.state),
                    "last_report_seq": i.last_report_seq,
                    "last_report_digest": i.last_report_digest,
                }
                for i in changed
            ],
        )
    if batch.reports:
        connection.execute(_INSERT_REPORTS, batch.reports)
    if batch.grants:
        connection.execute(_INSERT_GRANTS, batch.grants)
    audit.append_many(session, batch.entries)


def _renew_one(batch: _Batch, request: RenewalRequest, signer: SigningKey, early: Prepared) -> str:
    signed, now = request.signed, request.now
    instance = batch.instances.get(signed.key_id)
    if instance is None:
        raise UnknownReporterError("the message is signed by no enrolled instance's key")
    lease = batch.leases[instance.lease_id]
    report = early.report
    if report is None or (report.instance_id, report.lease_id) != (instance.id, lease.id):
        report = verify_report(
            signed,
            instance_key=InstanceSigningKey(bytes.fromhex(instance.signing_key)),
            lease_id=lease.id,
            instance_id=instance.id,
        )
    previous = batch.last.get(instance.id)
    try:
        check_report_chain(
            previous.signed if previous else None,
            previous.report if previous else None,
            signed,
            report,
        )
    except DuplicateReportError:
        assert previous is not None  # a duplicate of nothing cannot be
        return previous.response_json
    answer = _answer(
        batch,
        lease=lease,
        instance=instance,
        report=report,
        now=now,
        signer=signer,
        speculation=early.speculation,
    )
    batch.reports.append(
        {
            "instance_id": instance.id,
            "seq": report.seq,
            "digest": early.digest,
            "signed_json": early.stored_json,
            "response_json": answer.json,
            "received_at": now,
        }
    )
    granted = answer.grant
    if granted is not None:
        batch.grants.append(
            {
                "instance_id": instance.id,
                "seq": granted.seq,
                "signed_json": answer.grant_json,
                "issued_at": now,
            }
        )
    batch.last[instance.id] = _Accepted(signed, report, answer.json)
    instance.last_report_seq, instance.last_report_digest = report.seq, early.digest
    instance.changed = True
    detail: dict[str, object] = {
        "instance_id": instance.id,
        "seq": report.seq,
        "counters": report.counters.model_dump(mode="json"),
    }
    if granted is not None:
        detail["grant"] = {"seq": granted.seq, "allowance": str(granted.allowance)}
    else:
        detail["withheld"] = answer.withheld
    batch.entries.append(
        audit.NewEntry(
            kind="usage_report",
            actor=instance.signing_key_id,
            lease_id=lease.id,
            detail=detail,
            at=now,
        )
    )
    return answer.json


class _Answer(NamedTuple):
    """The answer to one report: its JSON, and the grant it carries or why none."""

    json: str
    grant: ledger.Grant | None = None
    grant_json: str = ""  # the grant's wire form
    withheld: str | None = None


def _answer(
    batch: _Batch,
    *,
    lease: _Lease,
    instance: _Instance,
    report: UsageReport,
    now: datetime,
    signer: SigningKey,
    speculation: _Speculation | None,
) -> _Answer:
    """The ledger's decision for this report, applied to the batch's rows in memory."""
    orders = orders_for(batch.orders[lease.id], instance.id)
    if lease.state.killed or instance.state.status != ledger.InstanceStatus.ACTIVE:
        ended = RenewResponse(withheld="instance_ended", orders=orders)
        return _Answer(ended.model_dump_json(), withheld=ended.withheld)
    usage = usage_in_units(lease.state.terms.unit, report)
    renewal = ledger.renew(lease.state, instance.state, usage=usage, now=now)
    lease.state, lease.changed = renewal.lease, True
    instance.state = renewal.instance
    if renewal.grant is None:
        withheld = renewal.withheld.value if renewal.withheld else None
        response = RenewResponse(withheld=withheld, orders=orders)  # type: ignore[arg-type]
        return _Answer(response.model_dump_json(), withheld=response.withheld)
    decision = grant_decision(
        bundle_id=lease.bundle_id, lease=renewal.lease, grant=renewal.grant, now=now
    )
    if speculation is not None and speculation.decision == decision:  # signed before the lock
        if orders:
            with_orders = RenewResponse(grant=speculation.signed, orders=orders)
            return _Answer(with_orders.model_dump_json(), renewal.grant, speculation.signed_json)
        return _Answer(speculation.response_json, renewal.grant, speculation.signed_json)
    signed = sign_grant(signer, decision)
    response = RenewResponse(grant=signed, orders=orders)
    return _Answer(response.model_dump_json(), renewal.grant, signed.to_json().decode())
