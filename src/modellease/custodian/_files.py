"""Crash-safe file writes for the custodian home: nothing half-written is ever visible."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from modellease.errors import OutputExistsError


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0600) with ``data`` atomically; refuse if it already exists."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(Path(tmp), path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def publish(tmp: Path, path: Path) -> None:
    """Give the finished file ``tmp`` its final name, refusing to replace anything."""
    try:
        os.link(tmp, path)  # unlike rename, link never replaces an existing file
    except FileExistsError:
        raise OutputExistsError(f"{path} already exists; refusing to overwrite it") from None
    tmp.unlink()
    fsync_dir(path.parent)
