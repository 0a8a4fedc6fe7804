"""The file operations attesters use on kernel interfaces, as one small seam.

Kernel attestation interfaces (Gramine's ``/dev/attestation``, Linux configfs-tsm) are
files with rules ordinary files lack: a value must arrive in one ``write()`` of an exact
size, directories create their own attribute files. :class:`OsKernelFiles` does exactly one
system call per operation so those rules hold; tests substitute the kernel simulators in
:mod:`modellease.testing.kernel`, which enforce the same rules on a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from modellease.errors import AttesterUnavailableError

MAX_KERNEL_READ = 1024 * 1024  # outblob/auxblob/quote: a few KiB in practice


class KernelFiles(Protocol):
    def read(self, path: Path) -> bytes: ...
    def write(self, path: Path, data: bytes) -> None: ...
    def mkdir(self, path: Path) -> None: ...
    def rmdir(self, path: Path) -> None: ...


class OsKernelFiles:
    """Real kernel files: one ``read``/``write`` system call per operation."""

    def read(self, path: Path) -> bytes:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise AttesterUnavailableError(f"cannot open {path}: {exc.strerror}") from None
        try:
            return os.read(fd, MAX_KERNEL_READ)
        except OSError as exc:
            raise AttesterUnavailableError(f"cannot read {path}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def write(self, path: Path, data: bytes) -> None:
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError as exc:
            raise AttesterUnavailableError(f"cannot open {path}: {exc.strerror}") from None
        try:
            # configfs and Gramine take an attribute in one write or fail it with an error
            os.write(fd, data)
        except OSError as exc:
            raise AttesterUnavailableError(f"the kernel refused {path}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def mkdir(self, path: Path) -> None:
        try:
            path.mkdir()
        except OSError as exc:
            raise AttesterUnavailableError(f"cannot create {path}: {exc.strerror}") from None

    def rmdir(self, path: Path) -> None:
        try:
            path.rmdir()
        except OSError as exc:
            raise AttesterUnavailableError(f"cannot remove {path}: {exc.strerror}") from None
