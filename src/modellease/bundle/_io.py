"""Small file helpers shared by seal and open: full reads, lengths, and wiping buffers."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from io import BufferedIOBase

_WIPE_BLOCK = bytes(1024 * 1024)

Progress = Callable[[int], None]
"""Called with the number of bytes just processed."""


def read_full(f: BufferedIOBase, out: memoryview) -> int:
    """Fill ``out`` from ``f``; return the number of bytes read (short only at EOF)."""
    filled = 0
    while filled < len(out):
        n = f.readinto(out[filled:])
        if not n:
            break
        filled += n
    return filled


def positional_reader(f: BufferedIOBase) -> Callable[[int, memoryview], int]:
    """A function that fills a buffer from ``f`` at an offset; safe to call from threads.

    Files with a descriptor are read with ``os.preadv`` (no shared position, and the GIL is
    released during the copy); other streams (``BytesIO``) seek and read under a lock.
    """
    try:
        fd = f.fileno()
    except (AttributeError, OSError, ValueError):
        lock = threading.Lock()

        def seek_and_read(offset: int, out: memoryview) -> int:
            with lock:
                f.seek(offset)
                return read_full(f, out)

        return seek_and_read

    def pread(offset: int, out: memoryview) -> int:
        filled = 0
        while filled < len(out):
            n = os.preadv(fd, [out[filled:]], offset + filled)
            if not n:
                break
            filled += n
        return filled

    return pread


def pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    """Write all of ``data`` to ``fd`` at ``offset`` (``os.pwrite`` may write less at once)."""
    while data:
        n = os.pwrite(fd, data, offset)
        if n <= 0:
            raise OSError(f"could not write to file descriptor {fd} at offset {offset}")
        data, offset = data[n:], offset + n


def stream_length(f: BufferedIOBase) -> int:
    """Total length of a seekable stream, leaving its position unchanged."""
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        here = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(here)
        return end


def wipe(buf: memoryview) -> None:
    """Overwrite a writable buffer with zeros (best effort: Python may hold other copies)."""
    view = buf.cast("B")
    for start in range(0, len(view), len(_WIPE_BLOCK)):
        end = min(start + len(_WIPE_BLOCK), len(view))
        view[start:end] = _WIPE_BLOCK[: end - start]
