"""Reading what a bundle says about itself, without any key (``modellease inspect``).

Nothing here is trusted: the manifest is read *unverified*, and the signature is checked
only against the public key the manifest itself names. That tells an operator whether the
bundle is intact and who claims to have sealed it; whether that custodian is trusted is
the reader's decision (:class:`~modellease.bundle.reader.BundleReader` takes trusted keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modellease._hazmat import ed25519_verify
from modellease.bundle.format import (
    HEADER_SIZE,
    MANIFEST_PAYLOAD_TYPE,
    SIGNATURE_SIZE,
    BundleHeader,
    sealed_length,
)
from modellease.bundle.manifest import Manifest, read_unverified_manifest
from modellease.errors import BundleIntegrityError
from modellease.protocol import pae


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleInspection:
    """What ``inspect`` found. ``manifest`` is unverified; read ``signature_valid`` with it."""

    header: BundleHeader
    length: int
    manifest: Manifest
    signature_valid: bool
    length_matches: bool

    @property
    def intact(self) -> bool:
        """Signature valid for the named key and the frame section has the declared length."""
        return self.signature_valid and self.length_matches


def inspect_bundle(path: str | Path) -> BundleInspection:
    """Read header and manifest of a bundle and check its self-signature.

    Raises ``NotABundleError``/``UnsupportedBundleVersionError``/``LimitExceededError`` for
    headers that cannot be read and ``BundleIntegrityError`` if the manifest is unreadable.
    """
    with Path(path).open("rb") as f:
        length = f.seek(0, 2)
        f.seek(0)
        header = BundleHeader.from_bytes(f.read(HEADER_SIZE), available=length)
        raw = f.read(header.manifest_size)
        signature = f.read(SIGNATURE_SIZE)
    manifest = read_unverified_manifest(raw)
    if manifest is None:
        raise BundleIntegrityError
    valid = (
        ed25519_verify(
            bytes.fromhex(manifest.custodian.public_key),
            signature,
            pae(MANIFEST_PAYLOAD_TYPE, raw),
        )
        and manifest.format_version == header.version
    )
    expected = header.frames_offset + sealed_length(manifest.model.size, manifest.frame_size)
    return BundleInspection(
        header=header,
        length=length,
        manifest=manifest,
        signature_valid=valid,
        length_matches=length == expected,
    )
