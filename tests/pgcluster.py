"""A throwaway PostgreSQL cluster on loopback for the store tests.

``initdb`` into a temporary directory owned by the ``postgres`` user (PostgreSQL refuses to
run as root), ``pg_ctl start`` on a free port with the socket in that directory, and
``pg_ctl stop`` + removal at the end of the test session. The server binaries come from
Debian's ``postgresql`` package, installed by ``scripts/ensure-postgres`` (``make test``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_USER = "postgres"
DATABASE = "modellease_test"


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: run scripts/ensure-postgres (make test does)"
        )
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as_postgres(args: list[str]) -> None:
    prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh database on a fresh cluster; remove it after."""
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="modellease-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        pw = pwd.getpwnam(PG_USER)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    try:
        _run_as_postgres(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                PG_USER,
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} "
            f"-c unix_socket_directories={root} -c fsync=off"
        )
        _run_as_postgres(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-l",
                str(root / "log"),
                "start",
            ]
        )
        try:
            _run_as_postgres(
                [
                    str(bindir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    PG_USER,
                    DATABASE,
                ]
            )
            yield f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/{DATABASE}"
        finally:
            _run_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
