"""``modellease audit export | verify``: the hash-chained audit log on the command line.

* ``export`` reads the custodian database (``--db URL``, or the SQLite file in the custodian
  home) and writes JSON lines to stdout or to a new file; it never writes to the database and
  never overwrites a file (the file appears complete or not at all);
* ``verify`` needs no database: it checks a file (or ``-`` for stdin) and prints the entry
  count and head; a broken chain is one line naming the first broken entry, exit 3.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated

import typer
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from modellease.cli._common import HomeOption, err, out, printable, reporting
from modellease.custodian.audit import ChainHead, ChainReport, export_entries, read_export
from modellease.custodian.audit import verify_chain as verify_audit_chain
from modellease.custodian.home import resolve_home
from modellease.custodian.store import connect, default_url
from modellease.errors import OutputExistsError, StateError

audit_app = typer.Typer(help="The hash-chained audit log: export it, verify an export.")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: the SQLite database in the home)."),
]


def _database_url(db: str | None, home: Path | None) -> str:
    if db is not None and home is not None:
        raise typer.BadParameter("give --db or --home, not both")
    url = db if db is not None else default_url(resolve_home(home))
    parsed = make_url(url)  # ValueError for a malformed URL
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and not Path(database).is_file():
        raise StateError(f"no SQLite database at {database}")  # connecting would create one
    return url


@contextmanager
def _new_file(path: Path) -> Iterator[IO[bytes]]:
    """Write a file that appears under ``path`` only when complete; never replace one."""
    if path.exists():
        raise OutputExistsError(f"{path} already exists; refusing to overwrite it")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # unlike rename, link never replaces an existing file
        except FileExistsError:
            raise OutputExistsError(f"{path} already exists; refusing to overwrite it") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write_export(url: str, sink: IO[bytes]) -> ChainHead | None:
    engine = connect(url)
    last = None
    try:
        for entry in export_entries(engine):
            sink.write(entry.to_line().encode("utf-8") + b"\n")
            last = entry
    except SQLAlchemyError as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise StateError(f"cannot read the audit log: {first_line}") from None
    finally:
        engine.dispose()
    return None if last is None else ChainHead(seq=last.seq, hash=last.hash)


@audit_app.command("export")
def export(
    db: DbOption = None,
    home: HomeOption = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write to this new file (default: stdout).")
    ] = None,
) -> None:
    """Export the audit log as JSON lines, one entry per line, in sequence order."""
    with reporting():
        url = _database_url(db, home)
        if out_path is None:
            last = _write_export(url, typer.get_binary_stream("stdout"))
        else:
            with _new_file(out_path) as sink:
                last = _write_export(url, sink)
        count = 0 if last is None else last.seq
        where = "" if out_path is None else printable(f" to {out_path}")
        err.print(f"exported {count} entries{where}; last entry {last or 'none'} (unverified)")


def _parse_head(value: str | None) -> ChainHead | None:
    if value is None:
        return None
    try:
        return ChainHead.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--head") from None


@audit_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="An audit export (JSON lines), or - for stdin.")],
    head: Annotated[
        str | None,
        typer.Option(
            "--head",
            metavar="SEQ:HASH",
            help="A head noted earlier: the log must contain entry SEQ with this hash.",
        ),
    ] = None,
) -> None:
    """Verify an exported audit log without the database: sequence, hashes, links."""
    anchor = _parse_head(head)
    with reporting():
        report: ChainReport
        if str(file) == "-":
            report = verify_audit_chain(
                read_export(typer.get_binary_stream("stdin")), anchor=anchor
            )
        else:
            with file.open("rb") as stream:
                report = verify_audit_chain(read_export(stream), anchor=anchor)
        out.print(f"audit log intact: {report.entries} entries")
        out.print(f"head {report.head}")
        if anchor is not None:
            out.print(f"contains the expected head {anchor}")
