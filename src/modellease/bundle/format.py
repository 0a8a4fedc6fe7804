"""Byte layout of a sealed model bundle (format version 1), its limits and frame rules.

See ``docs/bundle-format.md`` for the full description and ``docs/adr/0001`` for why
the frames are built this way. Layout::

    offset      size  field
    0           8     magic  89 4D 4C 42 55 4E 0D 0A  ("\\x89MLBUN\\r\\n")
    8           2     format version, big-endian (1)
    10          2     reserved, must be zero
    12          4     manifest length M, big-endian, 1 <= M <= MAX_MANIFEST_SIZE
    16          M     manifest: RFC 8785 canonical JSON
    16+M        64    Ed25519 signature over PAE(MANIFEST_PAYLOAD_TYPE, manifest)
    80+M        ...   frames: for i in 0..n-1, AES-256-GCM(ciphertext_i || tag_i)

Frame rules (a STREAM-style construction, Hoang, Reyhanitabar, Rogaway, Vizar 2015):

* every frame but the last holds exactly ``frame_size`` plaintext bytes; the last holds
  1..frame_size bytes; ``n = ceil(size / frame_size)``, so an empty model has no bundle;
* nonce_i = index i as 8 bytes big-endian || 4-byte final flag (1 for the last frame);
  the DEK is fresh for every bundle, so no nonce ever repeats under one key;
* AAD = ``FRAME_AAD_DOMAIN || SHA-256(PAE(type, manifest))``: every frame is bound to
  the exact signed manifest (bundle id, size, model hash, frame size);
* the reader first requires the exact length the signed manifest implies, which already
  refuses truncation and extension; independently of that check, a stream cut at a frame
  boundary ends on a frame sealed as non-final, reordering or duplication breaks the index,
  and splicing from another bundle breaks the key and AAD: each fails a tag check.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from modellease._hazmat import AEAD_TAG_SIZE, ED25519_SIGNATURE_SIZE
from modellease.errors import (
    BundleIntegrityError,
    LimitExceededError,
    NotABundleError,
    UnsupportedBundleVersionError,
)
from modellease.protocol import pae

MAGIC = b"\x89MLBUN\r\n"  # non-ASCII first byte and CR LF catch text-mode mangling, as PNG does
HEADER_SIZE = 16
SIGNATURE_SIZE = ED25519_SIGNATURE_SIZE
TAG_SIZE = AEAD_TAG_SIZE

MANIFEST_PAYLOAD_TYPE = "application/vnd.modellease.bundle-manifest.v1+json"
FRAME_AAD_DOMAIN = b"modellease/bundle/v1/frame\x00"

# ---- limits: every size read from a bundle is checked against these before use.
MAX_MANIFEST_SIZE = 64 * 1024  # a manifest is metadata; 64 KiB leaves room for provenance
MIN_FRAME_SIZE = 256  # smaller frames only add tag overhead; tests use this to get many frames
MAX_FRAME_SIZE = 64 * 1024 * 1024  # bounds the per-frame buffer a reader allocates
DEFAULT_FRAME_SIZE = 1024 * 1024  # fastest measured frame size (docs/bundle-format.md)
MAX_MODEL_SIZE = 1 << 40  # 1 TiB: far above today's largest single-file models
MAX_FRAME_COUNT = (1 << 32) - 1  # keeps the frame index well inside its 8-byte nonce field


class BundleVersion(IntEnum):
    V1 = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleHeader:
    """The fixed 16-byte header. Its fields are unverified until the manifest signature is."""

    STRUCT: ClassVar[struct.Struct] = struct.Struct(">8sHHI")

    version: BundleVersion
    manifest_size: int

    @classmethod
    def from_bytes(cls, data: bytes, *, available: int) -> BundleHeader:
        """Parse a header; ``available`` is the bundle's total length in bytes."""
        if len(data) < HEADER_SIZE or data[: len(MAGIC)] != MAGIC:
            raise NotABundleError("not a modellease bundle (no bundle header)")
        _magic, version, reserved, manifest_size = cls.STRUCT.unpack_from(data)
        if version not in BundleVersion.__members__.values():
            raise UnsupportedBundleVersionError(f"unsupported bundle format version {version}")
        if reserved != 0:
            raise BundleIntegrityError
        if manifest_size > MAX_MANIFEST_SIZE:
            raise LimitExceededError(
                f"declared manifest size {manifest_size} exceeds the limit of {MAX_MANIFEST_SIZE}"
            )
        if manifest_size == 0 or HEADER_SIZE + manifest_size + SIGNATURE_SIZE > available:
            raise BundleIntegrityError
        return cls(version=BundleVersion(version), manifest_size=manifest_size)

    def to_bytes(self) -> bytes:
        return self.STRUCT.pack(MAGIC, self.version, 0, self.manifest_size)

    @property
    def frames_offset(self) -> int:
        return HEADER_SIZE + self.manifest_size + SIGNATURE_SIZE


def frame_count(size: int, frame_size: int) -> int:
    """Number of frames for ``size`` plaintext bytes (``size`` >= 1)."""
    return -(-size // frame_size)


def sealed_length(size: int, frame_size: int) -> int:
    """Length of the frame section: every plaintext byte plus one tag per frame."""
    return size + frame_count(size, frame_size) * TAG_SIZE


def frame_nonce(index: int, *, final: bool) -> bytes:
    """96-bit nonce of frame ``index``: 8-byte big-endian index || 4-byte final flag."""
    return struct.pack(">QI", index, 1 if final else 0)


def frame_aad(manifest: bytes) -> bytes:
    """Associated data shared by every frame: binds them to the exact signed manifest."""
    return FRAME_AAD_DOMAIN + hashlib.sha256(pae(MANIFEST_PAYLOAD_TYPE, manifest)).digest()
