"""The audit log: the hash kernel, each way to tamper with an export, and appends on both stores."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from modellease.custodian import audit
from modellease.custodian.audit import (
    AUDIT_ENTRY_PAYLOAD_TYPE,
    GENESIS_HASH,
    GENESIS_HEAD,
    MAX_DETAIL_SIZE,
    MAX_LINE_SIZE,
    MAX_SEQ,
    AuditChainError,
    AuditEntryAlteredError,
    AuditEntryDeletedError,
    AuditEntryDuplicatedError,
    AuditEntryReorderedError,
    AuditFormatError,
    AuditHeadMismatchError,
    AuditLinkBrokenError,
    ChainHead,
    ExportedEntry,
    append,
    entry_hash,
    export_entries,
    export_lines,
    format_at,
    parse_export_line,
    read_export,
    verify_chain,
)
from modellease.custodian.store import AuditEntry, LeaseRow, connect, migrate
from modellease.errors import InvalidInputError

NOW = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers
def chain(n: int) -> list[ExportedEntry]:
    """A valid chain of ``n`` entries, built with the kernel only."""
    entries: list[ExportedEntry] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        fields = {
            "seq": seq,
            "at": NOW + timedelta(seconds=seq),
            "kind": "usage.report" if seq % 2 else "grant.issued",
            "actor": f"instance:i-{seq % 3}",
            "lease_id": None if seq == 1 else "lease-1",
            "detail": {"report_seq": seq, "usage": str(seq * 10)},
            "prev_hash": prev,
        }
        prev = entry_hash(**fields)  # type: ignore[arg-type]
        entries.append(ExportedEntry(**fields, hash=prev))  # type: ignore[arg-type]
    return entries


def rehashed(entry: ExportedEntry, **changes: object) -> ExportedEntry:
    """``entry`` with ``changes`` and its hash recomputed, as anyone with DB access can."""
    changed = dataclasses.replace(entry, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(changed, hash=changed.computed_hash())


def export_bytes(entries: list[ExportedEntry]) -> bytes:
    return b"".join(e.to_line().encode() + b"\n" for e in entries)


def verify_bytes(data: bytes, anchor: ChainHead | None = None) -> audit.ChainReport:
    return verify_chain(read_export(io.BytesIO(data)), anchor=anchor)


def raises_at(
    error: type[AuditChainError], entries: list[ExportedEntry], *, seq: int, line: int
) -> AuditChainError:
    with pytest.raises(error) as caught:
        verify_chain(entries)
    assert type(caught.value) is error
    assert (caught.value.seq, caught.value.line) == (seq, line)
    assert isinstance(caught.value, InvalidInputError)
    assert "\n" not in str(caught.value)
    return caught.value


# --------------------------------------------------------------------------- the hash
def test_entry_hash_is_sha256_of_the_documented_pae_bytes() -> None:
    body = (
        b'{"actor":"operator:tok-1","at":"2026-11-28T12:00:00.000000Z","detail":'
        b'{"budget":"100","unit":"requests"},"kind":"lease.created","lease_id":"lease-1",'
        b'"prev_hash":"' + b"0" * 64 + b'","seq":1}'
    )
    expected = b"DSSEv1 46 application/vnd.modellease.audit-entry.v1+json %d %s" % (
        len(body),
        body,
    )
    digest = entry_hash(
        seq=1,
        at=datetime(2026, 11, 28, 13, 0, tzinfo=timezone(timedelta(hours=1))),
        kind="lease.created",
        actor="operator:tok-1",
        lease_id="lease-1",
        detail={"unit": "requests", "budget": "100"},
        prev_hash=GENESIS_HASH,
    )
    assert len(AUDIT_ENTRY_PAYLOAD_TYPE) == 46
    assert digest == hashlib.sha256(expected).hexdigest()
    # Known answer: pins the format; changing it breaks every stored log.
    assert digest == "dbf8826974342d9111e13cc328d89db9536e8a6c56a709f8f5002e878d9ef40b"


def test_every_field_is_covered_by_the_hash() -> None:
    entry = chain(2)[1]
    changes: dict[str, object] = {
        "seq": 3,
        "at": entry.at + timedelta(microseconds=1),
        "kind": "grant.issuee",
        "actor": "instance:i-9",
        "lease_id": None,
        "detail": {"report_seq": 2, "usage": "21"},
        "prev_hash": "f" * 64,
    }
    for name, value in changes.items():
        assert dataclasses.replace(entry, **{name: value}).computed_hash() != entry.hash, name


def test_times_are_utc_microseconds_and_naive_times_are_refused() -> None:
    paris = timezone(timedelta(hours=1))
    assert format_at(datetime(2026, 1, 2, 4, 5, 6, tzinfo=paris)) == "2026-01-02T03:05:06.000000Z"
    assert format_at(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00.000000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_at(datetime(2026, 1, 1))


def test_heads_parse_and_print_as_seq_colon_hash() -> None:
    head = ChainHead.parse(f"42:{'ab' * 32}")
    assert head == ChainHead(seq=42, hash="ab" * 32)
    assert str(head) == f"42:{'ab' * 32}"
    assert ChainHead.parse(str(GENESIS_HEAD)) == GENESIS_HEAD
    for bad in ["", "42", f"042:{'ab' * 32}", f"-1:{'ab' * 32}", f"1:{'AB' * 32}", "1:abc",
                f"{2**53}:{'ab' * 32}", f"1:{'ab' * 32}\n", f"\u0661:{'ab' * 32}"]:  # fmt: skip
        with pytest.raises(ValueError, match="SEQ:HASH"):
            ChainHead.parse(bad)


# --------------------------------------------------------------------------- verification
def test_an_intact_chain_verifies_and_names_its_head() -> None:
    entries = chain(5)
    report = verify_chain(entries)
    assert report.entries == 5
    assert report.head == ChainHead(seq=5, hash=entries[-1].hash)
    assert verify_chain([]) == audit.ChainReport(entries=0, head=GENESIS_HEAD)


def test_deleting_a_middle_entry_is_detected() -> None:
    entries = chain(5)
    error = raises_at(AuditEntryDeletedError, entries[:2] + entries[3:], seq=3, line=3)
    assert error.reason == "audit_entry_deleted"
    assert "entry 3 was deleted" in str(error)


def test_deleting_the_first_entry_is_detected() -> None:
    raises_at(AuditEntryDeletedError, chain(3)[1:], seq=1, line=1)


def test_deleting_the_last_entry_needs_the_noted_head() -> None:
    entries = chain(4)
    truncated = verify_chain(entries[:-1])  # a shorter log is a valid log ...
    assert truncated.head.seq == 3
    noted = verify_chain(entries).head
    with pytest.raises(AuditHeadMismatchError, match="ends at entry 3") as caught:
        verify_chain(entries[:-1], anchor=noted)  # ... but not the one whose head was noted
    assert caught.value.reason == "audit_head_mismatch"


def test_altering_a_detail_is_detected() -> None:
    entries = chain(4)
    entries[1] = dataclasses.replace(entries[1], detail={"report_seq": 2, "usage": "0"})
    error = raises_at(AuditEntryAlteredError, entries, seq=2, line=2)
    assert error.reason == "audit_entry_altered"


def test_altering_a_kind_is_detected() -> None:
    entries = chain(4)
    entries[2] = dataclasses.replace(entries[2], kind="order.kill")
    raises_at(AuditEntryAlteredError, entries, seq=3, line=3)


def test_swapping_two_entries_is_detected_as_reordering() -> None:
    entries = chain(5)
    entries[1], entries[2] = entries[2], entries[1]
    error = raises_at(AuditEntryReorderedError, entries, seq=2, line=2)
    assert error.reason == "audit_entry_reordered"
    assert "it is at line 3" in str(error)


def test_moving_an_entry_to_the_end_is_detected_as_reordering() -> None:
    entries = chain(5)
    moved = entries[:2] + entries[3:] + entries[2:3]
    error = raises_at(AuditEntryReorderedError, moved, seq=3, line=3)
    assert "it is at line 5" in str(error)


def test_duplicating_an_entry_is_detected() -> None:
    entries = chain(4)
    error = raises_at(
        AuditEntryDuplicatedError, [*entries[:3], entries[1], entries[3]], seq=2, line=4
    )
    assert error.reason == "audit_entry_duplicated"


def test_a_forged_entry_reusing_a_seq_is_detected() -> None:
    entries = chain(3)
    forged = rehashed(entries[2], kind="order.resume")
    raises_at(AuditEntryDuplicatedError, [*entries, forged], seq=3, line=4)


def test_a_changed_prev_hash_with_a_recomputed_hash_breaks_the_chain() -> None:
    entries = chain(4)
    entries[2] = rehashed(entries[2], prev_hash="ab" * 32)
    error = raises_at(AuditLinkBrokenError, entries, seq=3, line=3)
    assert error.reason == "audit_link_broken"


def test_rewriting_an_entry_with_its_hash_breaks_the_next_link() -> None:
    entries = chain(4)
    entries[1] = rehashed(entries[1], detail={"report_seq": 2, "usage": "0"})
    raises_at(AuditLinkBrokenError, entries, seq=3, line=3)


def test_deleting_and_renumbering_breaks_the_chain() -> None:
    entries = chain(4)
    renumbered = [entries[0], rehashed(entries[2], seq=2), rehashed(entries[3], seq=3)]
    raises_at(AuditLinkBrokenError, renumbered, seq=2, line=2)


def test_a_first_entry_must_link_to_genesis() -> None:
    raises_at(AuditLinkBrokenError, [rehashed(chain(1)[0], prev_hash="11" * 32)], seq=1, line=1)


def test_rewriting_the_whole_chain_is_caught_only_by_the_noted_head() -> None:
    entries = chain(3)
    noted = verify_chain(entries).head
    forged = [rehashed(entries[0], actor="operator:someone-else")]
    for entry in entries[1:]:
        forged.append(rehashed(entry, prev_hash=forged[-1].hash))
    assert verify_chain(forged).entries == 3
    with pytest.raises(AuditHeadMismatchError, match="entry 3 has hash") as caught:
        verify_chain(forged, anchor=noted)
    assert (caught.value.seq, caught.value.line) == (3, 3)


def test_a_noted_head_inside_a_grown_log_passes() -> None:
    entries = chain(6)
    assert verify_chain(entries, anchor=verify_chain(entries[:4]).head).head.seq == 6
    assert verify_chain(entries, anchor=GENESIS_HEAD).entries == 6
    assert verify_chain([], anchor=GENESIS_HEAD).entries == 0


def test_a_wrong_head_is_a_mismatch() -> None:
    entries = chain(3)
    with pytest.raises(AuditHeadMismatchError) as caught:
        verify_chain(entries, anchor=ChainHead(seq=2, hash="ee" * 32))
    assert (caught.value.seq, caught.value.line) == (2, 2)
    with pytest.raises(AuditHeadMismatchError) as caught:
        verify_chain(entries, anchor=ChainHead(seq=0, hash="ee" * 32))
    assert (caught.value.seq, caught.value.line) == (0, 0)


def test_a_gap_before_an_unreadable_line_is_a_deletion() -> None:
    entries = chain(4)

    def stream() -> Iterator[ExportedEntry]:
        yield entries[0]
        yield entries[2]  # entry 2 is missing ...
        raise AuditFormatError("line 3: garbage", seq=None, line=3)  # ... and nothing follows

    with pytest.raises(AuditEntryDeletedError) as caught:
        verify_chain(stream())
    assert (caught.value.seq, caught.value.line) == (2, 2)


# --------------------------------------------------------------------------- the export format
def test_lines_round_trip_exactly() -> None:
    for entry in chain(3):
        line = entry.to_line()
        assert parse_export_line(line) == entry
        assert parse_export_line(line + "\n") == entry
        assert parse_export_line(line.encode()) == entry
        assert "\n" not in line


def good_line() -> dict[str, object]:
    entry = chain(2)[1]
    return {
        "actor": entry.actor,
        "at": format_at(entry.at),
        "detail": entry.detail,
        "hash": entry.hash,
        "kind": entry.kind,
        "lease_id": entry.lease_id,
        "prev_hash": entry.prev_hash,
        "seq": entry.seq,
    }


def encode(document: dict[str, object]) -> bytes:
    from modellease.protocol.envelope import canonical_json  # noqa: PLC0415

    return canonical_json(document)


BAD_FIELDS: dict[str, dict[str, object]] = {
    "seq zero": {"seq": 0},
    "seq bool": {"seq": True},
    "seq float": {"seq": 2.5},
    "seq string": {"seq": "2"},
    "at without micros": {"at": "2026-11-28T12:00:02Z"},
    "at offset": {"at": "2026-11-28T12:00:02.000000+00:00"},
    "at no such day": {"at": "2026-02-30T12:00:02.000000Z"},
    "at number": {"at": 1},
    "kind upper": {"kind": "Lease.Created"},
    "kind empty": {"kind": ""},
    "kind long": {"kind": "k" * 65},
    "kind number": {"kind": 1},
    "actor empty": {"actor": ""},
    "actor control": {"actor": "op\x1b[31m"},
    "actor long": {"actor": "a" * 129},
    "lease id number": {"lease_id": 7},
    "lease id empty": {"lease_id": ""},
    "detail list": {"detail": [1]},
    "detail null": {"detail": None},
    "detail too big": {"detail": {"x": "y" * MAX_DETAIL_SIZE}},
    "hash upper": {"hash": "AB" * 32},
    "hash short": {"hash": "ab" * 31},
    "prev hash not hex": {"prev_hash": "zz" * 32},
    "prev hash null": {"prev_hash": None},
}


@pytest.mark.parametrize("changes", BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_a_field_out_of_its_rules_is_malformed(changes: dict[str, object]) -> None:
    with pytest.raises(AuditFormatError, match=r"^line 7: not an audit entry") as caught:
        parse_export_line(encode(good_line() | changes), line_number=7)
    assert (caught.value.seq, caught.value.line, caught.value.reason) == (
        None,
        7,
        "audit_malformed",
    )


BAD_LINES: dict[str, bytes] = {
    "empty": b"",
    "not json": b"seq=1",
    "array": b"[1]",
    "spaces": encode(good_line()).replace(b":", b": "),
    "crlf": encode(good_line()) + b"\r",
    "two newlines": encode(good_line()) + b"\n\n",
    "bom": b"\xef\xbb\xbf" + encode(good_line()),
    "not utf-8": encode(good_line()).replace(b"instance", b"inst\xffnce"),
    "duplicate key": encode(good_line())[:-1] + b',"seq":2}',
    "missing field": encode({k: v for k, v in good_line().items() if k != "hash"}),
    "extra field": encode(good_line() | {"signature": "x"}),
    "too long": encode(good_line() | {"detail": {"x": "\x01" * 4000}}),
}


@pytest.mark.parametrize("raw", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_line_not_in_the_one_exported_form_is_malformed(raw: bytes) -> None:
    with pytest.raises(AuditFormatError, match="not an audit entry"):
        parse_export_line(raw)


def test_a_line_with_a_lone_surrogate_is_malformed() -> None:
    with pytest.raises(AuditFormatError, match="not an audit entry"):
        parse_export_line('{"actor":"\ud800"}')


def test_the_line_cap_covers_the_largest_entry() -> None:
    biggest = ExportedEntry(
        seq=MAX_SEQ,
        at=NOW,
        kind="k" * 64,
        actor="\x7e\u2028" * 64,
        lease_id="\u2029" * 64,
        detail={"x": "y" * (MAX_DETAIL_SIZE - 8)},
        prev_hash="ab" * 32,
        hash="cd" * 32,
    )
    line = biggest.to_line().encode()
    assert len(line) <= MAX_LINE_SIZE
    assert parse_export_line(line) == biggest


def test_reading_an_export_needs_every_line_ended() -> None:
    data = export_bytes(chain(3))
    assert [e.seq for e in read_export(io.BytesIO(data))] == [1, 2, 3]
    with pytest.raises(AuditFormatError, match="line 3: not ended by a newline") as caught:
        list(read_export(io.BytesIO(data[:-1])))
    assert caught.value.line == 3
    with pytest.raises(AuditFormatError, match="line 2: not an audit entry"):
        list(read_export(io.BytesIO(data.replace(b"\n", b"\n\n", 1))))


def test_reading_stops_at_the_line_cap() -> None:
    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            buffer[:] = b"x" * len(buffer)
            return len(buffer)

    with pytest.raises(AuditFormatError, match=f"within {MAX_LINE_SIZE} bytes"):
        list(read_export(io.BufferedReader(Endless())))


def test_every_flipped_byte_of_an_export_is_caught() -> None:
    data = export_bytes(chain(3))
    for offset in range(len(data)):
        mutated = bytearray(data)
        mutated[offset] ^= 0x01
        with pytest.raises(AuditChainError):
            verify_bytes(bytes(mutated))


def test_every_truncation_is_caught_given_the_noted_head() -> None:
    data = export_bytes(chain(3))
    noted = verify_bytes(data).head
    line_ends = {i + 1 for i, byte in enumerate(data) if byte == ord("\n")}
    for size in range(len(data)):
        with pytest.raises(AuditChainError):
            verify_bytes(data[:size], anchor=noted)
        if size not in line_ends and size > 0:
            with pytest.raises(AuditFormatError):
                verify_bytes(data[:size])  # mid-line: caught even without the head


# --------------------------------------------------------------------------- the store
@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = connect(f"sqlite+pysqlite:///{tmp_path / 'audit.sqlite3'}")
    migrate(engine)
    yield engine
    engine.dispose()


def add(session: Session, n: int = 0, **extra: object) -> AuditEntry:
    values: dict[str, object] = {
        "kind": "grant.issued",
        "actor": "custodian",
        "lease_id": "lease-1",
        "detail": {"grant_seq": n, "allowance": "10"},
        "now": NOW + timedelta(seconds=n),
    }
    return append(session, **(values | extra))  # type: ignore[arg-type]


def stored(engine: Engine) -> list[ExportedEntry]:
    return list(export_entries(engine))


def lease_row() -> LeaseRow:
    return LeaseRow(
        id="lease-1", bundle_id="0" * 32, unit="requests", slice_size=10, heartbeat_ttl_s=30,
        hard_expiry_s=60, ends_at=NOW + timedelta(days=30), budget=100, paused=False,
        killed=False, committed=0, settled=0, active_usage=0, policy_json="{}",
        overseers_json="[]", auto_approve_per_day=None, created_at=NOW,
    )  # fmt: skip


def test_appended_entries_chain_and_export_verifies(store_url: str) -> None:
    engine = connect(store_url)
    migrate(engine)
    tokyo = timezone(timedelta(hours=9))
    with Session(engine) as s, s.begin():
        first = add(s, 1, lease_id=None, now=NOW.astimezone(tokyo), detail={"unit": "tokens"})
        assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    for n in (2, 3):
        with Session(engine) as s, s.begin():
            add(s, n)
    with Session(engine) as s, s.begin():  # two entries in one transaction chain too
        add(s, 4, kind="order.kill", actor="overseer:ab12")
        add(s, 5, detail={"nested": {"list": [1, 2.5, None, True]}})
    entries = stored(engine)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].at == NOW  # sub-second precision survives the database, as UTC
    assert entries[0].detail == {"unit": "tokens"}
    report = verify_chain(entries)
    assert report.head == ChainHead(seq=5, hash=entries[-1].hash)
    lines = list(export_lines(engine))
    assert [parse_export_line(line) for line in lines] == entries
    engine.dispose()


def test_an_entry_rolls_back_with_the_change_it_records(store_url: str) -> None:
    engine = connect(store_url)
    migrate(engine)
    with Session(engine) as s, s.begin():
        add(s, 1)

    def create_lease_then_fail() -> None:
        with Session(engine) as s, s.begin():
            s.add(lease_row())
            add(s, 2, kind="lease.created")
            raise LookupError  # the change fails after its entry was appended

    with pytest.raises(LookupError):
        create_lease_then_fail()
    with Session(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(LeaseRow)) == 0
    assert [e.seq for e in stored(engine)] == [1]
    with Session(engine) as s, s.begin():
        assert add(s, 2).seq == 2  # the rolled-back seq is reused: no gap
    assert verify_chain(stored(engine)).entries == 2
    engine.dispose()


def test_concurrent_writers_serialise_into_one_chain(store_url: str) -> None:
    engine = connect(store_url)
    migrate(engine)
    per_writer = 15
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def writer(name: str) -> None:
        start.wait()
        try:
            for n in range(per_writer):
                with Session(engine) as s, s.begin():
                    s.execute(sa.select(AuditEntry.seq).limit(1))  # a read before the append
                    add(s, n, actor=name)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    entries = stored(engine)
    assert verify_chain(entries).entries == 2 * per_writer
    assert sorted(e.actor for e in entries) == ["w0"] * per_writer + ["w1"] * per_writer
    engine.dispose()


def test_append_outside_a_transaction_is_a_caller_bug(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as s, pytest.raises(RuntimeError, match="inside the transaction"):
        add(s)


BAD_APPENDS: dict[str, tuple[type[Exception], dict[str, object]]] = {
    "naive time": (ValueError, {"now": NOW.replace(tzinfo=None)}),
    "detail not a mapping": (TypeError, {"detail": [("a", 1)]}),
    "detail with bytes": (ValueError, {"detail": {"key": b"\x00" * 32}}),
    "detail with a big int": (ValueError, {"detail": {"flops": 2**64}}),
    "detail with nan": (ValueError, {"detail": {"x": float("nan")}}),
    "detail too big": (ValueError, {"detail": {"x": "y" * MAX_DETAIL_SIZE}}),
    "kind not a name": (ValueError, {"kind": "Lease Created"}),
    "actor too long": (ValueError, {"actor": "a" * 129}),
    "lease id with newline": (ValueError, {"lease_id": "lease-1\nforged"}),
}


@pytest.mark.parametrize(("error", "changes"), BAD_APPENDS.values(), ids=BAD_APPENDS.keys())
def test_append_refuses_what_cannot_be_an_entry(
    sqlite_engine: Engine, error: type[Exception], changes: dict[str, object]
) -> None:
    with Session(sqlite_engine) as s, pytest.raises(error), s.begin():
        add(s, **changes)
    assert stored(sqlite_engine) == []


def test_a_full_log_refuses_to_append(sqlite_engine: Engine) -> None:
    last = chain(1)[0]
    with Session(sqlite_engine) as s, s.begin():
        s.add(AuditEntry(seq=MAX_SEQ, at=NOW, kind="k", actor="a", lease_id=None,
                         detail_json="{}", prev_hash=GENESIS_HASH, hash=last.hash))  # fmt: skip
    with Session(sqlite_engine) as s, pytest.raises(RuntimeError, match="full"), s.begin():
        add(s)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("detail_json", "not json", "not JSON"),
        ("detail_json", "[1]", "not a JSON object"),
        ("detail_json", '{"b":1, "a":2}', "canonical"),
        ("seq", 2**60, "cannot canonicalise"),
    ],
)
def test_export_refuses_a_row_append_cannot_have_written(
    sqlite_engine: Engine, column: str, value: object, message: str
) -> None:
    with Session(sqlite_engine) as s, s.begin():
        add(s, 1)
        add(s, 2)
    with sqlite_engine.begin() as conn:
        conn.execute(sa.update(AuditEntry).where(AuditEntry.seq == 2).values({column: value}))
    with pytest.raises(AuditEntryAlteredError, match=message) as caught:
        stored(sqlite_engine)
    assert caught.value.line is None
    assert caught.value.seq == (2 if column != "seq" else 2**60)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_appending_needs_only_select_and_insert_on_postgresql(store_url: str) -> None:
    engine = connect(store_url)
    migrate(engine)
    role = f"appender_{store_url.rsplit('/', 1)[1]}"  # roles are cluster-wide: one per test
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}"'))
        conn.execute(sa.text(f'GRANT SELECT, INSERT ON audit_log TO "{role}"'))

    def as_role(statement: Callable[[Session], object]) -> None:
        with Session(engine) as s, s.begin():
            s.execute(sa.text(f'SET LOCAL ROLE "{role}"'))
            statement(s)

    try:
        as_role(lambda s: add(s, 1))
        as_role(lambda s: add(s, 2))
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            as_role(lambda s: s.execute(sa.delete(AuditEntry)))  # it can append, never rewrite
        assert verify_chain(stored(engine)).entries == 2
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'REVOKE ALL ON audit_log FROM "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        engine.dispose()
