"""``modellease audit export | verify``: files, refusals, exit codes (0, 1, 2 usage, 3 bad)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from modellease.cli import app
from modellease.custodian.audit import append, export_lines
from modellease.custodian.store import AuditEntry, connect, default_url, migrate

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A custodian home whose database holds four audit entries."""
    path = tmp_path / "home"
    path.mkdir()
    engine = connect(default_url(path))
    migrate(engine)
    for n in range(1, 5):
        with Session(engine) as s, s.begin():
            append(
                s,
                kind="lease.created" if n == 1 else "grant.issued",
                actor="operator:tok-1",
                lease_id="lease-1",
                detail={"n": n, "note": "café \u202e"},
                now=NOW + timedelta(seconds=n),
            )
    engine.dispose()
    return path


@pytest.fixture
def db(home: Path) -> str:
    return default_url(home)


@pytest.fixture
def exported(tmp_path: Path, runner: CliRunner, db: str) -> Path:
    out = tmp_path / "audit.jsonl"
    result = runner.invoke(app, ["audit", "export", "--db", db, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_export_writes_every_entry_to_a_new_file(
    runner: CliRunner, exported: Path, db: str
) -> None:
    engine = connect(db)
    assert exported.read_bytes() == "".join(f"{x}\n" for x in export_lines(engine)).encode()
    engine.dispose()
    assert len(lines(exported)) == 4
    assert [p.name for p in exported.parent.iterdir() if p.name.startswith(".")] == []


def test_export_to_stdout_and_from_the_home(
    runner: CliRunner, home: Path, exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_home = runner.invoke(app, ["audit", "export", "--home", str(home)])
    assert by_home.exit_code == 0
    assert by_home.stdout_bytes == exported.read_bytes()
    assert "exported 4 entries; last entry 4:" in by_home.stderr
    monkeypatch.setenv("MODELLEASE_HOME", str(home))
    by_env = runner.invoke(app, ["audit", "export"])
    assert by_env.stdout_bytes == exported.read_bytes()


def test_export_refuses_to_overwrite_a_file(runner: CliRunner, exported: Path, db: str) -> None:
    exported.write_bytes(b"keep me")
    result = runner.invoke(app, ["audit", "export", "--db", db, "--out", str(exported)])
    assert result.exit_code == 1
    assert "(output_exists)" in result.stderr
    assert exported.read_bytes() == b"keep me"


def test_export_never_creates_a_database(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = runner.invoke(app, ["audit", "export", "--home", str(missing)])
    assert result.exit_code == 1
    assert "no SQLite database at" in result.stderr
    assert not missing.exists()
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    result = runner.invoke(app, ["audit", "export", "--db", f"sqlite:///{empty}"])
    assert result.exit_code == 1
    assert "cannot read the audit log: (sqlite3.OperationalError) no such table" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_export_of_a_tampered_row_fails_without_leaving_a_file(
    runner: CliRunner, tmp_path: Path, db: str
) -> None:
    engine = connect(db)
    with engine.begin() as conn:
        conn.execute(sa.update(AuditEntry).where(AuditEntry.seq == 3).values(detail_json="{"))
    engine.dispose()
    out = tmp_path / "audit.jsonl"
    result = runner.invoke(app, ["audit", "export", "--db", db, "--out", str(out)])
    assert result.exit_code == 3
    assert "(audit_entry_altered): stored entry 3 was altered" in result.stderr
    assert list(tmp_path.glob("*audit.jsonl*")) == []


def test_export_usage_errors(runner: CliRunner, home: Path, db: str) -> None:
    both = runner.invoke(app, ["audit", "export", "--db", db, "--home", str(home)])
    assert both.exit_code == 2
    assert runner.invoke(app, ["audit", "export", "--db", "not a url"]).exit_code == 1


def test_verify_an_intact_export(runner: CliRunner, exported: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", str(exported)])
    assert result.exit_code == 0, result.output
    assert "audit log intact: 4 entries" in result.stdout
    assert "head 4:" in result.stdout


def test_verify_reads_stdin(runner: CliRunner, exported: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", "-"], input=exported.read_bytes())
    assert result.exit_code == 0, result.output
    assert "4 entries" in result.stdout


def test_verify_a_deleted_entry_exits_3_naming_it(runner: CliRunner, exported: Path) -> None:
    kept = lines(exported)
    exported.write_bytes(b"".join(kept[:1] + kept[2:]))
    result = runner.invoke(app, ["audit", "verify", str(exported)])
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1
    assert "(audit_entry_deleted): line 2: entry 2 was deleted" in result.stderr


def test_verify_an_altered_entry_exits_3(runner: CliRunner, exported: Path) -> None:
    exported.write_bytes(exported.read_bytes().replace(b'"n":3', b'"n":9'))
    result = runner.invoke(app, ["audit", "verify", str(exported)])
    assert result.exit_code == 3
    assert "(audit_entry_altered): line 3: entry 3 was altered" in result.stderr


def test_verify_a_malformed_file_exits_3(runner: CliRunner, exported: Path) -> None:
    exported.write_bytes(exported.read_bytes()[:-1])
    result = runner.invoke(app, ["audit", "verify", str(exported)])
    assert result.exit_code == 3
    assert "(audit_malformed): line 4" in result.stderr


def test_verify_against_a_noted_head(runner: CliRunner, exported: Path) -> None:
    kept = lines(exported)
    head = runner.invoke(app, ["audit", "verify", str(exported)]).stdout.split("head ")[1].strip()
    ok = runner.invoke(app, ["audit", "verify", str(exported), "--head", head])
    assert ok.exit_code == 0
    assert f"contains the expected head {head}" in ok.stdout
    exported.write_bytes(b"".join(kept[:3]))  # the last entry is cut off
    cut = runner.invoke(app, ["audit", "verify", str(exported), "--head", head])
    assert cut.exit_code == 3
    assert "(audit_head_mismatch)" in cut.stderr
    wrong = runner.invoke(app, ["audit", "verify", str(exported), "--head", f"2:{'0' * 64}"])
    assert wrong.exit_code == 3
    assert "entry 2 has hash" in wrong.stderr
    bad = runner.invoke(app, ["audit", "verify", str(exported), "--head", "latest"])
    assert bad.exit_code == 2


def test_verify_a_missing_file_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 1
    assert "(FileNotFoundError)" in result.stderr


def test_a_file_created_during_export_is_not_replaced(tmp_path: Path) -> None:
    from modellease.cli.audit import _new_file  # noqa: PLC0415 - the race, not reachable by CLI
    from modellease.errors import OutputExistsError  # noqa: PLC0415

    target = tmp_path / "audit.jsonl"

    def export_while_someone_creates_the_file() -> None:
        with _new_file(target) as sink:
            sink.write(b"entries\n")
            target.write_bytes(b"someone else's")

    with pytest.raises(OutputExistsError):
        export_while_someone_creates_the_file()
    assert target.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["audit.jsonl"]
