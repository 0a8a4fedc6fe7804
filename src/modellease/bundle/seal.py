"""Sealing a model file into a bundle, streaming, with bounded memory.

Rules:

* the data key and bundle id are fresh random values for every bundle; only the
  deterministic seam :func:`seal_stream` takes them as arguments (known-answer tests);
* pass 1 measures size and SHA-256; pass 2 encrypts frame by frame and hashes again, and
  a model file that changed between the passes is refused (nothing half-sealed is kept);
* memory in use is two frame buffers, whatever the model size;
* an empty model, or one above ``MAX_MODEL_SIZE``, is refused.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from io import BufferedIOBase
from typing import BinaryIO

from pydantic import JsonValue, ValidationError

from modellease._hazmat import FrameCipher, SigningKey, random_aead_key
from modellease.bundle._io import Progress, read_full
from modellease.bundle.format import (
    DEFAULT_FRAME_SIZE,
    MAX_MODEL_SIZE,
    TAG_SIZE,
    BundleHeader,
    BundleVersion,
    frame_aad,
    frame_count,
    frame_nonce,
)
from modellease.bundle.manifest import (
    CIPHER,
    FORMAT_VERSION,
    CustodianRef,
    Manifest,
    ModelFormat,
    ModelInfo,
    format_timestamp,
    sign_manifest,
)
from modellease.errors import InvalidInputError, LimitExceededError, ModelFileError
from modellease.keys import DataKey, data_key, fingerprint

HASH_CHUNK = 8 * 1024 * 1024  # read size for the measuring pass


@dataclass(frozen=True, slots=True)
class SealedBundle:
    """What sealing produced: the signed manifest and the data key (to be stored, not shipped)."""

    manifest: Manifest
    data_key: DataKey = field(repr=False)


def new_bundle_id() -> str:
    return os.urandom(16).hex()


def new_data_key() -> DataKey:
    return data_key(random_aead_key())


def measure(source: BufferedIOBase, progress: Progress | None = None) -> tuple[int, str]:
    """Return (size, SHA-256 hex) of a stream, reading it once from the start."""
    source.seek(0)
    h = hashlib.sha256()
    size = 0
    buffer = memoryview(bytearray(HASH_CHUNK))  # reused: no fresh allocation per read
    while n := read_full(source, buffer):
        h.update(buffer[:n])
        size += n
        if progress is not None:
            progress(n)
    return size, h.hexdigest()


def seal_stream(
    source: BufferedIOBase,
    out: BinaryIO,
    *,
    signer: SigningKey,
    key: DataKey,
    bundle_id: str,
    created_at: datetime,
    name: str,
    version: str,
    model_format: ModelFormat,
    provenance: dict[str, JsonValue],
    frame_size: int = DEFAULT_FRAME_SIZE,
    progress: Progress | None = None,
) -> SealedBundle:
    """Seal the seekable ``source`` into ``out`` with the given key material (the seam)."""
    size, sha256 = measure(source, progress)
    if size == 0:
        raise ModelFileError("the model file is empty: there is nothing to seal")
    if size > MAX_MODEL_SIZE:
        raise LimitExceededError(f"model is {size} bytes; the limit is {MAX_MODEL_SIZE}")
    public = signer.public_bytes()
    try:
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            bundle_id=bundle_id,
            cipher=CIPHER,
            frame_size=frame_size,
            created_at=format_timestamp(created_at),
            custodian=CustodianRef(public_key=public.hex(), fingerprint=fingerprint(public)),
            model=ModelInfo(
                name=name, version=version, format=model_format, size=size, sha256=sha256
            ),
            provenance=provenance,
        )
        signed = sign_manifest(manifest, signer)
    except (ValidationError, ValueError) as exc:
        raise InvalidInputError(f"cannot build the manifest: {_first_error(exc)}") from None
    out.write(BundleHeader(version=BundleVersion.V1, manifest_size=len(signed.raw)).to_bytes())
    out.write(signed.raw)
    out.write(signed.signature)
    _encrypt_frames(
        source,
        out,
        manifest=manifest,
        cipher=FrameCipher(key),
        aad=frame_aad(signed.raw),
        progress=progress,
    )
    return SealedBundle(manifest=manifest, data_key=key)


def _encrypt_frames(
    source: BufferedIOBase,
    out: BinaryIO,
    *,
    manifest: Manifest,
    cipher: FrameCipher,
    aad: bytes,
    progress: Progress | None,
) -> None:
    frame_size, size = manifest.frame_size, manifest.model.size
    n = frame_count(size, frame_size)
    plain = memoryview(bytearray(frame_size))
    sealed = memoryview(bytearray(frame_size + TAG_SIZE))
    h = hashlib.sha256()
    source.seek(0)
    for i in range(n):
        want = min(frame_size, size - i * frame_size)
        if read_full(source, plain[:want]) != want:
            raise ModelFileError("the model file changed while it was being sealed")
        h.update(plain[:want])
        cipher.encrypt_into(
            frame_nonce(i, final=i == n - 1), plain[:want], aad, sealed[: want + TAG_SIZE]
        )
        out.write(sealed[: want + TAG_SIZE])
        if progress is not None:
            progress(want)
    if source.read(1) or h.hexdigest() != manifest.model.sha256:
        raise ModelFileError("the model file changed while it was being sealed")


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else str(err["msg"])
    return str(exc)
