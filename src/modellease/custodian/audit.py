"""The audit log: append-only and hash-chained, exported as JSON lines, verified offline.

Every state change of the control plane (lease created, enrolment accepted or refused, grant,
usage report, extension, order, token created) is one entry, appended in the same database
transaction as the change it records, so the two commit or roll back together.

Rules:

* entries are numbered ``seq = 1, 2, 3 ...`` without gaps; each carries ``prev_hash``, the
  ``hash`` of the entry before it (:data:`GENESIS_HASH`, 64 zeros, for entry 1), and its own
  ``hash`` (:func:`entry_hash`), which covers every other field, ``prev_hash`` included;
* **entry hash** = lowercase hex SHA-256 of ``PAE(AUDIT_ENTRY_PAYLOAD_TYPE, body)``, where
  ``body`` is the RFC 8785 (JCS) canonical JSON of the object with exactly the keys
  ``actor, at, detail, kind, lease_id, prev_hash, seq``. Byte for byte::

      DSSEv1 46 application/vnd.modellease.audit-entry.v1+json <len(body)> <body>

      body = {"actor":"operator:tok-1","at":"2026-11-28T12:00:00.000000Z","detail":{...},
              "kind":"lease.created","lease_id":"lease-1","prev_hash":"00...00","seq":1}

  (JCS sorts keys and has one spelling for every value; ``lease_id`` may be ``null``;
  ``<len(body)>`` is the decimal byte length). The payload type keeps an audit hash from
  ever being mistaken for the hash of another document;
* ``at`` is RFC 3339 UTC with exactly six fractional digits and a ``Z``
  (``2026-11-28T12:00:00.000000Z``): both databases keep microseconds, so the stored time
  hashes the same on export as on append. Times need not increase (clocks step back);
* an exported line is the JCS canonical JSON of ``body`` plus ``"hash"``, one line per
  entry, in ``seq`` order, each ended by ``\\n``; :func:`parse_export_line` accepts that
  form only (canonical, no unknown or missing field, every field within its limit);
* :func:`verify_chain` stops at the first broken entry and says what broke there
  (each a subclass of :class:`AuditChainError` with its own ``reason``):

  1. the entry's own hash does not match its fields: **altered**;
  2. its ``seq`` was already used: **duplicated** (an exact copy, or a forged entry);
  3. its ``seq`` skips ahead: the expected entry comes later in the file: **reordered**,
     or never (up to the first unreadable line): **deleted**;
  4. its ``prev_hash`` is not the previous entry's hash: **link broken** (an entry before
     it was deleted or replaced and the rest renumbered, or the link itself was edited);
  5. with an anchor (a head ``SEQ:HASH`` noted or published earlier): entry ``SEQ`` must
     exist and have that hash, else **head mismatch**. The log may have grown since;
* what a chain cannot show: removing entries from the end, or rewriting an entry and every
  later one (anyone can recompute SHA-256), leaves a valid chain. Only comparing the head
  with one kept outside the database detects it, so a report always names the head;
* :func:`append` runs inside the caller's open transaction and takes the log's write lock
  before reading the head (PostgreSQL: the transaction advisory lock :data:`AUDIT_LOCK_KEY`,
  which needs no UPDATE/DELETE privilege, so the service's role may be granted only SELECT
  and INSERT on the log; SQLite: a write statement that changes nothing, which takes the
  database write lock), so concurrent writers serialise and never both compute the same
  ``seq``. The lock is held until the caller commits: append last, just before commit;
* ``detail`` is a JSON object of facts, at most :data:`MAX_DETAIL_SIZE` bytes canonical; it
  must never hold secrets (keys, tokens, nonces) or prompt text: the caller chooses what goes
  in, :func:`append` only refuses what cannot be an entry (``TypeError``/``ValueError``, as
  for any caller bug);
* a file that breaks a rule raises an :class:`AuditChainError` (an ``InvalidInputError``)
  naming the ``seq`` and the line where it broke.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Final, Self, cast

from sqlalchemy import Engine, Table, false, func, insert, select, update
from sqlalchemy.orm import Session

from modellease._hazmat import ct_equal
from modellease.custodian.store import AuditEntry
from modellease.errors import InvalidInputError
from modellease.protocol.envelope import canonical_json, pae, parse_canonical_json

AUDIT_ENTRY_PAYLOAD_TYPE: Final = "application/vnd.modellease.audit-entry.v1+json"
GENESIS_HASH: Final = "0" * 64  # "previous hash" of entry 1
MAX_SEQ: Final = 2**53 - 1  # the largest integer RFC 8785 represents exactly
MAX_DETAIL_SIZE: Final = 16 * 1024  # bytes of canonical detail JSON: facts, never payloads
MAX_KIND_LENGTH: Final = 64  # the audit_log.kind column
MAX_ACTOR_LENGTH: Final = 128  # the audit_log.actor column
MAX_LEASE_ID_LENGTH: Final = 64  # the audit_log.lease_id column
# A line is the detail plus under 2 KiB of other fields (actor and lease id at most 6 bytes
# per character once escaped, two hashes, a time, a seq, the keys): 4 KiB of headroom.
MAX_LINE_SIZE: Final = MAX_DETAIL_SIZE + 4 * 1024
EXPORT_BATCH_SIZE: Final = 1000  # rows fetched per round trip while exporting
# PostgreSQL advisory lock serialising appends: ASCII "mlaudit1" as a 64-bit integer.
# No other lock in modellease may use this key.
AUDIT_LOCK_KEY: Final = int.from_bytes(b"mlaudit1", "big")

_KIND = re.compile(rf"[a-z][a-z0-9_.-]{{0,{MAX_KIND_LENGTH - 1}}}")  # "lease.created"
_ACTOR = re.compile(rf"[^\x00-\x1f\x7f]{{1,{MAX_ACTOR_LENGTH}}}")
_LEASE_ID = re.compile(rf"[^\x00-\x1f\x7f]{{1,{MAX_LEASE_ID_LENGTH}}}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_HEAD = re.compile(r"(0|[1-9][0-9]{0,15}):([0-9a-f]{64})")
_LINE_FIELDS: Final = frozenset(
    {"actor", "at", "detail", "hash", "kind", "lease_id", "prev_hash", "seq"}
)


# --------------------------------------------------------------------------- errors
# Subclasses of modellease.errors classes, kept beside the rules they enforce.
class AuditChainError(InvalidInputError):
    """An exported audit log breaks a chain rule. ``seq`` and ``line`` say where (if known)."""

    reason = "audit_chain"

    def __init__(self, message: str, *, seq: int | None, line: int | None) -> None:
        super().__init__(message)
        self.seq = seq
        self.line = line


class AuditFormatError(AuditChainError):
    """A line is not a well-formed exported entry (JSON, canonical form, fields, limits)."""

    reason = "audit_malformed"


class AuditEntryAlteredError(AuditChainError):
    """An entry's hash does not match its fields: the entry was changed after it was written."""

    reason = "audit_entry_altered"


class AuditEntryDuplicatedError(AuditChainError):
    """A sequence number appears a second time."""

    reason = "audit_entry_duplicated"


class AuditEntryReorderedError(AuditChainError):
    """The expected entry is present, but at a later line."""

    reason = "audit_entry_reordered"


class AuditEntryDeletedError(AuditChainError):
    """The sequence skips an entry that appears nowhere after it."""

    reason = "audit_entry_deleted"


class AuditLinkBrokenError(AuditChainError):
    """An entry's ``prev_hash`` is not the previous entry's hash."""

    reason = "audit_link_broken"


class AuditHeadMismatchError(AuditChainError):
    """The log does not contain the anchored head: truncated, or rewritten up to it."""

    reason = "audit_head_mismatch"


# --------------------------------------------------------------------------- values
@dataclass(frozen=True, slots=True, kw_only=True)
class ChainHead:
    """The last entry of a log: its ``seq`` and ``hash``; ``SEQ:HASH`` as text."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Self:
        """Read ``SEQ:HASH`` (decimal seq, 64 lowercase hex digits); ``ValueError`` if not."""
        found = _HEAD.fullmatch(text)
        if found is None or int(found[1]) > MAX_SEQ:
            raise ValueError("a head is SEQ:HASH, like 42:<64 lowercase hex digits>")
        return cls(seq=int(found[1]), hash=found[2])


GENESIS_HEAD: Final = ChainHead(seq=0, hash=GENESIS_HASH)  # the head of an empty log


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReport:
    """What :func:`verify_chain` returns, only for an intact chain."""

    entries: int
    head: ChainHead


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportedEntry:
    """One audit entry as exported; not verified until :func:`verify_chain` says so."""

    seq: int
    at: datetime
    kind: str
    actor: str
    lease_id: str | None
    detail: dict[str, Any] = field(hash=False)
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        """The hash these fields should have (:func:`entry_hash`)."""
        return entry_hash(
            seq=self.seq,
            at=self.at,
            kind=self.kind,
            actor=self.actor,
            lease_id=self.lease_id,
            detail=self.detail,
            prev_hash=self.prev_hash,
        )

    def to_line(self) -> str:
        """The exported line (without its newline): canonical JSON of every field."""
        body = _body(
            seq=self.seq,
            at=self.at,
            kind=self.kind,
            actor=self.actor,
            lease_id=self.lease_id,
            detail=self.detail,
            prev_hash=self.prev_hash,
        )
        return canonical_json(body | {"hash": self.hash}).decode("utf-8")


# --------------------------------------------------------------------------- the hash
def format_at(at: datetime) -> str:
    """``at`` as the log writes it: RFC 3339 UTC, microseconds, ``Z``. Naive is refused."""
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _body(
    *,
    seq: int,
    at: datetime,
    kind: str,
    actor: str,
    lease_id: str | None,
    detail: Mapping[str, object],
    prev_hash: str,
) -> dict[str, object]:
    return {
        "actor": actor,
        "at": format_at(at),
        "detail": dict(detail),
        "kind": kind,
        "lease_id": lease_id,
        "prev_hash": prev_hash,
        "seq": seq,
    }


def entry_hash(
    *,
    seq: int,
    at: datetime,
    kind: str,
    actor: str,
    lease_id: str | None,
    detail: Mapping[str, object],
    prev_hash: str,
) -> str:
    """Hex SHA-256 of ``PAE(AUDIT_ENTRY_PAYLOAD_TYPE, JCS(fields))`` (see the module doc)."""
    body = _body(
        seq=seq,
        at=at,
        kind=kind,
        actor=actor,
        lease_id=lease_id,
        detail=detail,
        prev_hash=prev_hash,
    )
    return hashlib.sha256(pae(AUDIT_ENTRY_PAYLOAD_TYPE, canonical_json(body))).hexdigest()


def _same(a: str, b: str) -> bool:
    return ct_equal(a.encode("utf-8"), b.encode("utf-8"))


# --------------------------------------------------------------------------- field rules
def _check_fields(*, kind: str, actor: str, lease_id: str | None) -> None:
    if _KIND.fullmatch(kind) is None:
        raise ValueError(f"kind must match {_KIND.pattern}, like lease.created")
    if _ACTOR.fullmatch(actor) is None:
        raise ValueError(f"actor must be 1 to {MAX_ACTOR_LENGTH} characters, no controls")
    if lease_id is not None and _LEASE_ID.fullmatch(lease_id) is None:
        raise ValueError(f"lease_id must be 1 to {MAX_LEASE_ID_LENGTH} characters, no controls")


def _canonical_detail(detail: Mapping[str, object]) -> bytes:
    if not isinstance(detail, Mapping):
        raise TypeError("detail must be a mapping (a JSON object)")
    raw = canonical_json(dict(detail))  # ValueError for anything JSON cannot say exactly
    if len(raw) > MAX_DETAIL_SIZE:
        raise ValueError(f"detail is {len(raw)} bytes as JSON; at most {MAX_DETAIL_SIZE}")
    return raw


# --------------------------------------------------------------------------- parsing
def _parse_at(value: object) -> datetime:
    if not isinstance(value, str) or _AT.fullmatch(value) is None:
        raise ValueError("at must be like 2026-11-28T12:00:00.000000Z")
    return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)  # ValueError: no such day


def _parse_str(document: dict[str, Any], name: str) -> str:
    value = document[name]
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")  # noqa: TRY004 - one error for bad input
    return value


def _parse_fields(raw: bytes) -> ExportedEntry:
    if len(raw) > MAX_LINE_SIZE:
        raise ValueError(f"longer than {MAX_LINE_SIZE} bytes")
    document = parse_canonical_json(raw)
    if document.keys() != _LINE_FIELDS:
        missing = sorted(_LINE_FIELDS - document.keys())
        unexpected = sorted(document.keys() - _LINE_FIELDS)
        raise ValueError(f"fields missing: {missing}, unexpected: {unexpected}")
    seq = document["seq"]
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"seq must be an integer from 1 to {MAX_SEQ}")
    lease_id = document["lease_id"]
    if lease_id is not None and not isinstance(lease_id, str):
        raise ValueError("lease_id must be a string or null")
    detail = document["detail"]
    if not isinstance(detail, dict):
        raise ValueError("detail must be a JSON object")  # noqa: TRY004 - as above
    entry = ExportedEntry(
        seq=seq,
        at=_parse_at(document["at"]),
        kind=_parse_str(document, "kind"),
        actor=_parse_str(document, "actor"),
        lease_id=lease_id,
        detail=detail,
        prev_hash=_parse_str(document, "prev_hash"),
        hash=_parse_str(document, "hash"),
    )
    _check_fields(kind=entry.kind, actor=entry.actor, lease_id=entry.lease_id)
    _canonical_detail(entry.detail)
    for name, value in (("prev_hash", entry.prev_hash), ("hash", entry.hash)):
        if _SHA256_HEX.fullmatch(value) is None:
            raise ValueError(f"{name} must be 64 lowercase hex digits")
    return entry


def parse_export_line(line: str | bytes, *, line_number: int | None = None) -> ExportedEntry:
    """Parse one exported line (one trailing ``\\n`` allowed) or raise :class:`AuditFormatError`.

    Only the exact form :meth:`ExportedEntry.to_line` writes is accepted. The entry is not
    verified: only :func:`verify_chain` checks hashes and links.
    """
    where = "" if line_number is None else f"line {line_number}: "
    try:
        raw = line.encode("utf-8") if isinstance(line, str) else bytes(line)
        return _parse_fields(raw.removesuffix(b"\n"))
    except ValueError as exc:  # UnicodeError included
        raise AuditFormatError(
            f"{where}not an audit entry: {exc}", seq=None, line=line_number
        ) from None


def read_export(stream: IO[bytes]) -> Iterator[ExportedEntry]:
    """Parse an export file line by line; no line is read past :data:`MAX_LINE_SIZE`."""
    number = 0
    while raw := stream.readline(MAX_LINE_SIZE + 1):
        number += 1
        if not raw.endswith(b"\n"):
            raise AuditFormatError(
                f"line {number}: not ended by a newline within {MAX_LINE_SIZE} bytes "
                "(truncated file or oversized line)",
                seq=None,
                line=number,
            )
        yield parse_export_line(raw, line_number=number)


# --------------------------------------------------------------------------- verification
def _later_line(rest: Iterator[ExportedEntry], seq: int, after: int) -> int | None:
    """The line of entry ``seq`` among the entries after line ``after``, if any."""
    try:
        for number, later in enumerate(rest, start=after + 1):
            if later.seq == seq:
                return number
    except AuditFormatError:
        pass  # classify with what could be read: the entry did not come before this line
    return None


def _check_next(
    entry: ExportedEntry, *, line: int, head: ChainHead, rest: Iterator[ExportedEntry]
) -> None:
    # Step 1: the entry is what was hashed.
    if not _same(entry.computed_hash(), entry.hash):
        raise AuditEntryAlteredError(
            f"line {line}: entry {entry.seq} was altered: its hash does not match its fields",
            seq=entry.seq,
            line=line,
        )
    expected = head.seq + 1
    # Step 2: a used sequence number. Lines 1..head.seq hold entries 1..head.seq.
    if entry.seq < expected:
        raise AuditEntryDuplicatedError(
            f"line {line}: entry {entry.seq} is duplicated: seq {entry.seq} was used at line "
            f"{entry.seq}",
            seq=entry.seq,
            line=line,
        )
    # Step 3: a skipped sequence number: moved later, or gone.
    if entry.seq > expected:
        found = _later_line(rest, expected, line)
        if found is not None:
            raise AuditEntryReorderedError(
                f"line {line}: entry {expected} is out of order: it is at line {found}, "
                f"and line {line} holds entry {entry.seq}",
                seq=expected,
                line=line,
            )
        raise AuditEntryDeletedError(
            f"line {line}: entry {expected} was deleted: line {line} holds entry {entry.seq}",
            seq=expected,
            line=line,
        )
    # Step 4: the link to the previous entry.
    if not _same(entry.prev_hash, head.hash):
        raise AuditLinkBrokenError(
            f"line {line}: the chain is broken at entry {entry.seq}: its prev_hash is not the "
            f"hash of entry {head.seq} (an earlier entry was deleted or rewritten)",
            seq=entry.seq,
            line=line,
        )


def _check_anchor(anchor: ChainHead | None, head: ChainHead, *, line: int) -> None:
    # Step 5, where the log reaches the anchored seq.
    if anchor is not None and anchor.seq == head.seq and not _same(anchor.hash, head.hash):
        raise AuditHeadMismatchError(
            f"line {line}: head mismatch: entry {head.seq} has hash {head.hash}, not the "
            f"expected {anchor.hash} (the log was rewritten up to here)",
            seq=head.seq,
            line=line,
        )


def verify_chain(
    entries: Iterable[ExportedEntry], *, anchor: ChainHead | None = None
) -> ChainReport:
    """Check every rule of the module docstring; return the report only if all hold.

    ``anchor`` is a head noted earlier (``ChainHead.parse("SEQ:HASH")``): the log must
    contain that entry with that hash. Raises the :class:`AuditChainError` subclass for the
    first broken entry. Memory stays constant: ``entries`` may be a stream.
    """
    rest = iter(entries)
    head = GENESIS_HEAD
    _check_anchor(anchor, head, line=0)
    for line, entry in enumerate(rest, start=1):
        _check_next(entry, line=line, head=head, rest=rest)
        head = ChainHead(seq=entry.seq, hash=entry.hash)
        _check_anchor(anchor, head, line=line)
    if anchor is not None and anchor.seq > head.seq:
        raise AuditHeadMismatchError(
            f"head mismatch: the log ends at entry {head.seq}, before the expected entry "
            f"{anchor.seq} (entries were removed from the end)",
            seq=head.seq,
            line=head.seq,
        )
    return ChainReport(entries=head.seq, head=head)


# --------------------------------------------------------------------------- the store
def _lock_log(session: Session) -> None:
    """Take the audit log's write lock for the rest of the caller's transaction."""
    if session.connection().dialect.name == "postgresql":
        # SELECT ... FOR UPDATE on the head is not enough: it locks nothing in an empty log,
        # and under READ COMMITTED a writer that waited gets the old head back, then fails
        # on a duplicate seq. Readers (export) are not blocked.
        session.execute(_LOCK_POSTGRESQL)
    else:
        # SQLite: the driver begins a transaction only at the first write, so a head read
        # first could be stale. A write statement (matching no row) takes the lock first.
        session.execute(_LOCK_SQLITE)


# The log's statements, built once (Core).
_ENTRIES = cast(Table, AuditEntry.__table__)
_LOCK_POSTGRESQL = select(func.pg_advisory_xact_lock(AUDIT_LOCK_KEY))
_LOCK_SQLITE = update(_ENTRIES).where(false()).values(seq=_ENTRIES.c.seq)
_SELECT_HEAD = select(_ENTRIES.c.seq, _ENTRIES.c.hash).order_by(_ENTRIES.c.seq.desc()).limit(1)
_INSERT_ENTRIES = insert(_ENTRIES)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendedEntry:
    """Where an appended entry sits in the chain."""

    seq: int
    hash: str
    prev_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NewEntry:
    """An entry to append: what happened, who did it, to which lease, and when."""

    kind: str
    actor: str
    lease_id: str | None
    detail: Mapping[str, object]
    at: datetime


def append(
    session: Session,
    *,
    kind: str,
    actor: str,
    lease_id: str | None,
    detail: Mapping[str, object],
    now: datetime,
) -> AppendedEntry:
    """Append one entry inside the caller's open transaction; it commits with the caller.

    Call it last, just before commit: it holds the log's write lock until then. Raises
    ``RuntimeError`` outside a transaction or when the log is full, ``TypeError`` or
    ``ValueError`` for fields that cannot be an entry (see the module docstring).
    """
    entry = NewEntry(kind=kind, actor=actor, lease_id=lease_id, detail=detail, at=now)
    return append_many(session, [entry])[0]


def append_many(session: Session, entries: Sequence[NewEntry]) -> list[AppendedEntry]:
    """Append ``entries`` in order, under one take of the log's lock (see :func:`append`).

    Every entry is checked before the lock is taken: one bad entry appends none.
    """
    if not session.in_transaction():
        raise RuntimeError("audit.append() must run inside the transaction of the change")
    details = [_canonical_detail(e.detail).decode("utf-8") for e in entries]
    for e in entries:
        _check_fields(kind=e.kind, actor=e.actor, lease_id=e.lease_id)
        if e.at.tzinfo is None:
            raise ValueError("audit times must be timezone-aware")
    if not entries:
        return []
    _lock_log(session)
    connection = session.connection()  # Core statements: no ORM work on the hot path
    last = connection.execute(_SELECT_HEAD).first()
    head = GENESIS_HEAD if last is None else ChainHead(seq=last.seq, hash=last.hash)
    if head.seq > MAX_SEQ - len(entries):
        raise RuntimeError("the audit log is full")
    rows: list[dict[str, object]] = []
    appended: list[AppendedEntry] = []
    for e, detail_json in zip(entries, details, strict=True):
        seq, at = head.seq + 1, e.at.astimezone(UTC)
        kind, actor, lease_id, prev = e.kind, e.actor, e.lease_id, head.hash
        digest = entry_hash(
            seq=seq,
            at=at,
            kind=kind,
            actor=actor,
            lease_id=lease_id,
            detail=e.detail,
            prev_hash=prev,
        )
        rows.append(
            {
                "seq": seq,
                "at": at,
                "kind": kind,
                "actor": actor,
                "lease_id": lease_id,
                "detail_json": detail_json,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        appended.append(AppendedEntry(seq=seq, hash=digest, prev_hash=prev))
        head = ChainHead(seq=seq, hash=digest)
    connection.execute(_INSERT_ENTRIES, rows)
    return appended


def export_entries(engine: Engine) -> Iterator[ExportedEntry]:
    """Stream every stored entry in ``seq`` order from one consistent read.

    Raises :class:`AuditEntryAlteredError` for a row :func:`append` cannot have written
    (a detail that is not a canonical JSON object, a ``seq`` JSON cannot carry).
    """
    columns = (
        AuditEntry.seq,
        AuditEntry.at,
        AuditEntry.kind,
        AuditEntry.actor,
        AuditEntry.lease_id,
        AuditEntry.detail_json,
        AuditEntry.prev_hash,
        AuditEntry.hash,
    )
    query = select(*columns).order_by(AuditEntry.seq)
    with Session(engine) as session:
        rows = session.execute(query.execution_options(yield_per=EXPORT_BATCH_SIZE))
        for row in rows:
            try:
                entry = ExportedEntry(
                    seq=row.seq,
                    at=row.at,
                    kind=row.kind,
                    actor=row.actor,
                    lease_id=row.lease_id,
                    detail=parse_canonical_json(row.detail_json.encode("utf-8")),
                    prev_hash=row.prev_hash,
                    hash=row.hash,
                )
                entry.to_line()
            except ValueError as exc:
                raise AuditEntryAlteredError(
                    f"stored entry {row.seq} was altered in the database: {exc}",
                    seq=row.seq,
                    line=None,
                ) from None
            yield entry


def export_lines(engine: Engine) -> Iterator[str]:
    """Stream the log as exported lines (no newlines), in ``seq`` order."""
    for entry in export_entries(engine):
        yield entry.to_line()


__all__ = [
    "AUDIT_ENTRY_PAYLOAD_TYPE",
    "AUDIT_LOCK_KEY",
    "EXPORT_BATCH_SIZE",
    "GENESIS_HASH",
    "GENESIS_HEAD",
    "MAX_ACTOR_LENGTH",
    "MAX_DETAIL_SIZE",
    "MAX_KIND_LENGTH",
    "MAX_LEASE_ID_LENGTH",
    "MAX_LINE_SIZE",
    "MAX_SEQ",
    "AuditChainError",
    "AuditEntryAlteredError",
    "AuditEntryDeletedError",
    "AuditEntryDuplicatedError",
    "AuditEntryReorderedError",
    "AuditFormatError",
    "AuditHeadMismatchError",
    "AuditLinkBrokenError",
    "ChainHead",
    "ChainReport",
    "ExportedEntry",
    "append",
    "entry_hash",
    "export_entries",
    "export_lines",
    "format_at",
    "parse_export_line",
    "read_export",
    "verify_chain",
]
