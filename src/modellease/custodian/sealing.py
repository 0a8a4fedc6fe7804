"""The custodian's seal and unseal: bundle files on disk, data keys in the key store.

Rules:

* a bundle file appears under its final name only after its data key is stored, so there
  is never a bundle whose key was lost; on any failure the partial file is removed;
* existing files are never overwritten;
* unseal trusts only this home's own custodian key and writes the plaintext through a
  temporary file (mode 0600, blocks reserved up front) that is renamed into place only once
  every frame and the digest verified; a crash of the process itself can leave that
  temporary file behind.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import JsonValue

from modellease.bundle import (
    DEFAULT_FRAME_SIZE,
    BundleReader,
    Manifest,
    SealedBundle,
    detect_format,
    new_bundle_id,
    new_data_key,
    seal_stream,
)
from modellease.bundle._io import Progress
from modellease.bundle.detect import SNIFF_SIZE
from modellease.custodian._files import publish
from modellease.custodian.home import CustodianHome, UnlockedHome
from modellease.errors import ModelFileError, OutputExistsError


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise OutputExistsError(f"{path} already exists; refusing to overwrite it")


def seal_model_file(
    unlocked: UnlockedHome,
    model: Path,
    out: Path,
    *,
    name: str,
    version: str,
    model_format: str = "auto",
    provenance: dict[str, JsonValue] | None = None,
    frame_size: int = DEFAULT_FRAME_SIZE,
    progress: Progress | None = None,
) -> SealedBundle:
    """Seal ``model`` into the new file ``out`` and store its data key in the home."""
    _refuse_existing(out)
    try:
        source = model.open("rb")
    except OSError as exc:
        raise ModelFileError(f"cannot read the model file {model}: {exc.strerror}") from None
    with source:
        fmt = detect_format(model.name, source.read(SNIFF_SIZE), model_format)
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as sink:
                sealed = seal_stream(
                    source,
                    sink,
                    signer=unlocked.signer,
                    key=new_data_key(),
                    bundle_id=new_bundle_id(),
                    created_at=datetime.now(UTC),
                    name=name,
                    version=version,
                    model_format=fmt,
                    provenance=provenance if provenance is not None else {},
                    frame_size=frame_size,
                    progress=progress,
                )
                sink.flush()
                os.fchmod(sink.fileno(), 0o644)  # a bundle is not secret: it ships to borrowers
                os.fsync(sink.fileno())
            unlocked.keys.put(sealed.manifest.bundle_id, sealed.data_key)
            publish(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return sealed


def unseal_bundle(
    home: CustodianHome,
    unlocked: UnlockedHome,
    bundle: Path,
    out: Path,
    *,
    progress: Progress | None = None,
) -> Manifest:
    """Verify ``bundle`` as sealed by this home and write the model to the new file ``out``."""
    _refuse_existing(out)
    with BundleReader.open(bundle, trusted_custodians=[home.public_key]) as reader:
        manifest = reader.manifest
        key = unlocked.keys.get(manifest.bundle_id)
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "r+b") as sink:
                # Reserve the blocks first: a full disk then fails here with ENOSPC instead of
                # killing the process with SIGBUS halfway through writing plaintext.
                os.posix_fallocate(sink.fileno(), 0, manifest.model.size)
                with mmap.mmap(sink.fileno(), manifest.model.size) as mapped:
                    reader.decrypt_into(mapped, data_key=key, progress=progress)
                    mapped.flush()
                os.fsync(sink.fileno())
            publish(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return manifest
