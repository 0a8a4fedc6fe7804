"""Build bundles by hand from any manifest document: a custodian that lies or errs.

Used to show that the reader checks what the signature cannot: canonical form, schema,
the named key, sizes against the input, and the plaintext digest.
"""

from __future__ import annotations

import json
from typing import Any

from modellease._hazmat import FrameCipher, SigningKey
from modellease.bundle.format import (
    MANIFEST_PAYLOAD_TYPE,
    TAG_SIZE,
    BundleHeader,
    BundleVersion,
    frame_aad,
    frame_count,
    frame_nonce,
)
from modellease.protocol import canonical_json, pae


def forge(
    document: dict[str, Any],
    plaintext: bytes,
    *,
    signer: SigningKey,
    key: bytes,
    raw: bytes | None = None,
    frame_size: int | None = None,
) -> bytes:
    """Sign ``raw`` (default: canonical ``document``) and encrypt ``plaintext`` after it."""
    raw = canonical_json(document) if raw is None else raw
    frame_size = frame_size or int(document["frame_size"])
    header = BundleHeader(version=BundleVersion.V1, manifest_size=len(raw)).to_bytes()
    signature = signer.sign(pae(MANIFEST_PAYLOAD_TYPE, raw))
    cipher, aad = FrameCipher(key), frame_aad(raw)
    n = frame_count(len(plaintext), frame_size)
    frames = []
    for i in range(n):
        chunk = plaintext[i * frame_size : (i + 1) * frame_size]
        out = bytearray(len(chunk) + TAG_SIZE)
        cipher.encrypt_into(
            frame_nonce(i, final=i == n - 1), memoryview(chunk), aad, memoryview(out)
        )
        frames.append(bytes(out))
    return header + raw + signature + b"".join(frames)


def pretty(document: dict[str, Any]) -> bytes:
    """The same document in a non-canonical (indented) serialisation."""
    return json.dumps(document, indent=1).encode()
