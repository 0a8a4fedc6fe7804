"""Opening a sealed bundle: verify the manifest, then decrypt frames into memory.

Rules:

* the manifest signature is verified against the caller's trusted custodian keys before
  any manifest field is used (:func:`~modellease.bundle.manifest.verify_manifest`);
* declared sizes are checked against named limits and against the real input length
  before anything is allocated;
* frames are decrypted into a buffer the caller owns (or one allocated once), never to
  disk; a failed frame wipes what was already written and raises the one opaque
  :class:`~modellease.errors.BundleIntegrityError`;
* with ``verify_digest`` (the default), a second thread re-hashes the plaintext while it is
  decrypted and the result must equal the manifest's SHA-256 (docs/adr/0002).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from io import BufferedIOBase
from mmap import mmap
from types import TracebackType
from typing import Self

from modellease._hazmat import FrameCipher, ct_equal
from modellease.bundle._io import Progress, positional_reader, pwrite_all, stream_length, wipe
from modellease.bundle.format import (
    HEADER_SIZE,
    MAX_MODEL_SIZE,
    SIGNATURE_SIZE,
    TAG_SIZE,
    BundleHeader,
    frame_aad,
    frame_count,
    frame_nonce,
    sealed_length,
)
from modellease.bundle.manifest import Manifest, SignedManifest, verify_manifest
from modellease.errors import BundleIntegrityError, LimitExceededError
from modellease.keys import CustodianPublicKey, DataKey

# Ciphertext read per system call: a few frames, small enough that what was just copied from
# the page cache is still in the CPU cache when it is decrypted (8 MiB measured slower).
READ_CHUNK = 4 * 1024 * 1024
# Threads that each read and decrypt their own runs of frames. AES-GCM releases the GIL, so
# two threads overlap one's copy from the page cache with the other's decryption
# (bench/README.md: open went from ~0.6x to ~1x the one-core decryption floor). With the
# digest on, its thread takes the second core and one decryption thread is faster.
DECRYPT_THREADS = 2


Source = str | os.PathLike[str] | BufferedIOBase


class _DigestThread:
    """SHA-256 of the plaintext, computed on a second thread behind the decryptor."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bundle-digest", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)  # hashlib releases the GIL for large buffers

    def feed(self, chunk: memoryview) -> None:
        self._queue.put(chunk)

    def finish(self) -> bytes:
        self._queue.put(None)
        self._thread.join()
        return self._hash.digest()


@dataclass(frozen=True, slots=True)
class _FileTarget:
    """Decrypt into this file descriptor, ``size`` bytes from offset 0."""

    fd: int
    size: int


@dataclass(frozen=True, slots=True)
class OpenedBundle:
    """A verified manifest and the model's plaintext, in memory only."""

    manifest: Manifest
    plaintext: bytearray = field(repr=False)

    def wipe(self) -> None:
        """Zero the plaintext in place, once the engine holds its own copy (best effort:
        copies made elsewhere, e.g. a ``bytes`` handed to the engine, are not reached)."""
        wipe(memoryview(self.plaintext))


class BundleReader:
    """A bundle whose header and manifest signature have been verified.

    Use :meth:`open`; then :meth:`decrypt_into` a buffer of ``manifest.model.size`` bytes.
    """

    __slots__ = ("_file", "_header", "_manifest", "_owns_file", "_signed")

    def __init__(
        self,
        file: BufferedIOBase,
        *,
        header: BundleHeader,
        signed: SignedManifest,
        manifest: Manifest,
        owns_file: bool,
    ) -> None:
        self._file = file
        self._header = header
        self._signed = signed
        self._manifest = manifest
        self._owns_file = owns_file

    @classmethod
    def open(
        cls,
        source: Source,
        *,
        trusted_custodians: Collection[CustodianPublicKey],
        max_model_size: int = MAX_MODEL_SIZE,
    ) -> BundleReader:
        """Verify the header and manifest of ``source`` (a path or a seekable binary file)."""
        owns = not isinstance(source, BufferedIOBase)
        f = source if isinstance(source, BufferedIOBase) else open(source, "rb")  # noqa: SIM115, PTH123
        try:
            return cls._verify(
                f, trusted_custodians=trusted_custodians, max_model_size=max_model_size, owns=owns
            )
        except BaseException:
            if owns:
                f.close()
            raise

    @classmethod
    def _verify(
        cls,
        f: BufferedIOBase,
        *,
        trusted_custodians: Collection[CustodianPublicKey],
        max_model_size: int,
        owns: bool,
    ) -> BundleReader:
        length = stream_length(f)
        f.seek(0)
        # 1. Header: magic, version, reserved bits, declared manifest size vs limit and input.
        header = BundleHeader.from_bytes(f.read(HEADER_SIZE), available=length)
        signed = SignedManifest(raw=f.read(header.manifest_size), signature=f.read(SIGNATURE_SIZE))
        # 2. Manifest: signature by a trusted custodian, then canonical form and schema.
        manifest = verify_manifest(
            signed, trusted_custodians=trusted_custodians, header_version=header.version
        )
        # 3. Declared model size: under the caller's limit, and exactly what the input holds.
        size = manifest.model.size
        if size > max_model_size:
            raise LimitExceededError(
                f"model size {size} exceeds the limit of {max_model_size} bytes"
            )
        if length != header.frames_offset + sealed_length(size, manifest.frame_size):
            raise BundleIntegrityError
        return cls(f, header=header, signed=signed, manifest=manifest, owns_file=owns)

    @property
    def manifest(self) -> Manifest:
        """The verified manifest."""
        return self._manifest

    @property
    def signed_manifest(self) -> SignedManifest:
        """The manifest's bytes and signature as stored, for anyone to check again."""
        return self._signed

    def decrypt_into(
        self,
        out: bytearray | memoryview | mmap,
        *,
        data_key: DataKey,
        verify_digest: bool = True,
        progress: Progress | None = None,
    ) -> None:
        """Decrypt every frame into ``out[:size]``; on any failure wipe it and raise.

        Every view of ``out`` taken here is released before returning or raising, so the
        caller can close an ``mmap`` at once and no traceback keeps plaintext reachable.
        """
        size = self._manifest.model.size
        with memoryview(out) as view, view.cast("B") as flat:
            if flat.readonly or len(flat) < size:
                raise ValueError(f"need a writable buffer of at least {size} bytes")
            with flat[:size] as target:
                self._decrypt_checked(target, FrameCipher(data_key), verify_digest, progress)

    def decrypt_to_file(self, fd: int, *, data_key: DataKey) -> None:
        """Decrypt every frame into the file ``fd`` from offset 0, with positional writes.

        For a memory file that an engine maps afterwards. Nothing is mapped here: writing
        through a mapping faults every page in first, which cost more than the decryption
        (bench/README.md, ``node.py``). The plaintext passes through one run-sized buffer
        per thread, wiped before returning. Frames are authenticated, but the digest is not
        checked here: check the file's contents with :meth:`check_plaintext` before trusting
        them. On a failure the file holds a partial model: the caller closes it.
        """
        size = self._manifest.model.size
        self._decrypt_frames(_FileTarget(fd, size), FrameCipher(data_key), None, None)

    def _decrypt_checked(
        self,
        target: memoryview,
        cipher: FrameCipher,
        verify_digest: bool,
        progress: Progress | None,
    ) -> None:
        digest = _DigestThread() if verify_digest else None
        try:
            self._decrypt_frames(target, cipher, digest, progress)
            if digest is not None:
                actual, digest = digest.finish(), None
                self._check_digest(actual)
        except BaseException:
            if digest is not None:
                digest.finish()
            wipe(target)
            raise

    def _check_digest(self, actual: bytes) -> None:
        if not ct_equal(actual, bytes.fromhex(self._manifest.model.sha256)):
            raise BundleIntegrityError

    def check_plaintext(self, plaintext: bytes | bytearray | memoryview | mmap) -> None:
        """Re-hash a plaintext decrypted with ``verify_digest=False`` against the manifest's
        SHA-256 (constant-time compare), e.g. on another core while an engine loads it."""
        with memoryview(plaintext) as view, view.cast("B") as flat:
            self._check_digest(hashlib.sha256(flat[: self._manifest.model.size]).digest())

    def _decrypt_frames(
        self,
        target: memoryview | _FileTarget,
        cipher: FrameCipher,
        digest: _DigestThread | None,
        progress: Progress | None,
    ) -> None:
        frame_size = self._manifest.frame_size
        size = len(target) if isinstance(target, memoryview) else target.size
        n = frame_count(size, frame_size)
        aad = frame_aad(self._signed.raw)
        per_read = max(1, READ_CHUNK // (frame_size + TAG_SIZE))
        read_at = positional_reader(self._file)
        first_frame_at = self._header.frames_offset
        threads = 1 if digest is not None else DECRYPT_THREADS
        to_file = isinstance(target, _FileTarget)
        # Per thread: a ciphertext buffer and, for a file target, a plaintext staging buffer.
        buffers: queue.SimpleQueue[tuple[memoryview, memoryview]] = queue.SimpleQueue()
        staging = [
            memoryview(bytearray(per_read * frame_size if to_file else 0)) for _ in range(threads)
        ]
        for stage in staging:
            buffers.put((memoryview(bytearray(per_read * (frame_size + TAG_SIZE))), stage))

        def run(first: int) -> tuple[int, int]:
            """Read and decrypt one run of frames; return the span of plaintext it filled."""
            last = min(n, first + per_read)
            start, end = first * frame_size, min(size, last * frame_size)
            want = end - start + (last - first) * TAG_SIZE
            chunk, stage = buffers.get()
            # Straight into the caller's buffer, or into the staging buffer and then the file.
            into, base = (target, 0) if isinstance(target, memoryview) else (stage, start)
            try:
                if read_at(first_frame_at + first * (frame_size + TAG_SIZE), chunk[:want]) < want:
                    raise BundleIntegrityError  # the file shrank after it was verified
                offset = 0
                for i in range(first, last):
                    plain = min(frame_size, size - i * frame_size)
                    at = i * frame_size - base
                    authentic = cipher.decrypt_into(
                        frame_nonce(i, final=i == n - 1),
                        chunk[offset : offset + plain + TAG_SIZE],
                        aad,
                        into[at : at + plain],
                    )
                    if not authentic:
                        raise BundleIntegrityError
                    offset += plain + TAG_SIZE
                if isinstance(target, _FileTarget):
                    pwrite_all(target.fd, stage[: end - start], start)
            finally:
                buffers.put((chunk, stage))
            return start, end

        # Runs complete in any order; the digest and progress take them in order. On a
        # failure, queued runs are cancelled and running ones finish before the caller wipes.
        with ThreadPoolExecutor(threads, thread_name_prefix="bundle-decrypt") as pool:
            try:
                for start, end in pool.map(run, range(0, n, per_read)):
                    if digest is not None and isinstance(target, memoryview):
                        digest.feed(target[start:end])
                    if progress is not None:
                        progress(end - start)
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
            finally:
                for stage in staging:
                    wipe(stage)
        if read_at(first_frame_at + sealed_length(size, frame_size), memoryview(bytearray(1))):
            raise BundleIntegrityError  # the file grew after it was verified

    def close(self) -> None:
        if self._owns_file:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_bundle(
    source: Source,
    *,
    data_key: DataKey,
    trusted_custodians: Collection[CustodianPublicKey],
    verify_digest: bool = True,
    max_model_size: int = MAX_MODEL_SIZE,
    progress: Progress | None = None,
) -> OpenedBundle:
    """Verify and decrypt a bundle into a newly allocated in-memory buffer."""
    with BundleReader.open(
        source, trusted_custodians=trusted_custodians, max_model_size=max_model_size
    ) as reader:
        plaintext = bytearray(reader.manifest.model.size)
        reader.decrypt_into(
            plaintext, data_key=data_key, verify_digest=verify_digest, progress=progress
        )
        return OpenedBundle(manifest=reader.manifest, plaintext=plaintext)
