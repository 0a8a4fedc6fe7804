"""Kernel interface simulators for attester tests: real files, kernel rules enforced.

Each simulator lays out a temporary directory exactly like the kernel interface and
implements :class:`~modellease.attestation.backends.kernel.KernelFiles`, applying the rules
a regular file would not: configfs-tsm creates an entry's attribute files on ``mkdir``,
takes ``inblob`` only as one write of exactly 64 bytes (``EINVAL`` otherwise, as
``tdx_guest`` and ``sev_guest`` do), bumps ``generation`` on every write and regenerates
``outblob``; Gramine's ``user_report_data`` takes exactly 64 bytes. What the "hardware"
returns is a callback, so tests can hand back real recorded evidence.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from modellease.errors import AttesterUnavailableError

Outblob = Callable[[bytes], bytes]
"""Given the 64-byte inblob / user report data, return the report or quote bytes."""

_TSM_ATTRIBUTES = (
    "provider",
    "generation",
    "inblob",
    "outblob",
    "auxblob",
    "privlevel",
    "privlevel_floor",
)


def _refuse(path: Path, code: int) -> AttesterUnavailableError:
    return AttesterUnavailableError(f"the kernel refused {path}: {os.strerror(code)}")


class FakeTsm:
    """configfs-tsm (``/sys/kernel/config/tsm/report``) over a temporary directory."""

    def __init__(
        self, root: Path, *, provider: str, outblob: Outblob, auxblob: bytes = b""
    ) -> None:
        self.root = root
        self.provider = provider
        self._outblob = outblob
        self._auxblob = auxblob
        self.raced = False  # when set, another writer bumps generation behind our back
        root.mkdir(parents=True, exist_ok=True)

    def mkdir(self, path: Path) -> None:
        if path.parent != self.root or path.exists():
            raise _refuse(path, errno.EEXIST if path.exists() else errno.ENOENT)
        path.mkdir()
        for name in _TSM_ATTRIBUTES:
            (path / name).write_bytes(b"")
        (path / "provider").write_bytes(self.provider.encode() + b"\n")
        (path / "generation").write_bytes(b"0\n")
        (path / "privlevel_floor").write_bytes(b"0\n")

    def rmdir(self, path: Path) -> None:
        shutil.rmtree(path)

    def read(self, path: Path) -> bytes:
        if path.name in ("inblob", "privlevel"):  # write-only attributes
            raise _refuse(path, errno.EACCES)
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        if path.name not in ("inblob", "privlevel"):
            raise _refuse(path, errno.EACCES)
        if path.name == "inblob" and len(data) != 64:
            raise _refuse(path, errno.EINVAL)
        path.write_bytes(data)
        entry = path.parent
        generation = int((entry / "generation").read_bytes()) + 1 + int(self.raced)
        (entry / "generation").write_bytes(f"{generation}\n".encode())
        if path.name == "inblob":
            (entry / "outblob").write_bytes(self._outblob(data))
            (entry / "auxblob").write_bytes(self._auxblob)


class FakeGramine:
    """Gramine's ``/dev/attestation`` over a temporary directory."""

    def __init__(self, root: Path, *, quote: Outblob, attestation_type: str = "dcap") -> None:
        self.root = root
        self._quote = quote
        root.mkdir(parents=True, exist_ok=True)
        (root / "attestation_type").write_bytes(attestation_type.encode() + b"\n")
        (root / "user_report_data").write_bytes(bytes(64))
        (root / "quote").write_bytes(b"")

    def read(self, path: Path) -> bytes:
        if path.name == "quote":
            return self._quote((self.root / "user_report_data").read_bytes())
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        if path.name != "user_report_data":
            raise _refuse(path, errno.EACCES)
        if len(data) != 64:
            raise _refuse(path, errno.EINVAL)
        path.write_bytes(data)

    def mkdir(self, path: Path) -> None:  # pragma: no cover - Gramine has no directories to make
        raise _refuse(path, errno.EPERM)

    def rmdir(self, path: Path) -> None:  # pragma: no cover
        raise _refuse(path, errno.EPERM)
