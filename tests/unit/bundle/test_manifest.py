"""Manifest rules: signature first, then canonical form, schema, named key and version."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest

from modellease.bundle import open_bundle
from modellease.bundle.format import MAX_MANIFEST_SIZE, BundleVersion
from modellease.bundle.manifest import (
    Manifest,
    SignedManifest,
    format_timestamp,
    read_unverified_manifest,
    sign_manifest,
    verify_manifest,
)
from modellease.errors import BundleIntegrityError
from tests.conftest import FIXED_TIME, Sealed, seal_bytes, signer_from
from tests.unit.bundle.forge import forge, pretty

KEY = b"\x42" * 32


@pytest.fixture
def base(model_bytes: bytes) -> Sealed:
    return seal_bytes(model_bytes)


def document(base: Sealed) -> dict[str, Any]:
    return copy.deepcopy(base.sealed.manifest.model_dump(mode="json"))


def open_forged(base: Sealed, blob: bytes, **kw: Any) -> bytearray:
    return open_bundle(
        io.BytesIO(blob), data_key=base.key, trusted_custodians=[base.custodian], **kw
    ).plaintext


def test_forge_reproduces_a_real_bundle(base: Sealed, model_bytes: bytes) -> None:
    """The forger is faithful: with an honest manifest it builds the very same bytes."""
    assert forge(document(base), model_bytes, signer=signer_from(1), key=KEY) == base.blob


def test_signed_but_not_canonical_manifest_is_refused(base: Sealed, model_bytes: bytes) -> None:
    doc = document(base)
    blob = forge(doc, model_bytes, signer=signer_from(1), key=KEY, raw=pretty(doc))
    with pytest.raises(BundleIntegrityError):
        open_forged(base, blob)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("cipher",), "aes-128-ctr"),
        (("format_version",), 2),
        (("frame_size",), 16),
        (("model", "format"), "pickle"),
        (("model", "size"), 0),
        (("model", "sha256"), "00"),
        (("bundle_id",), "not-hex"),
        (("created_at",), "yesterday"),
        (("custodian", "fingerprint"), "sha256:" + "0" * 64),
        (("surprise",), True),
    ],
)
def test_signed_manifest_violating_the_schema_is_refused(
    base: Sealed, model_bytes: bytes, path: tuple[str, ...], value: object
) -> None:
    doc = document(base)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    blob = forge(doc, model_bytes, signer=signer_from(1), key=KEY, frame_size=256)
    with pytest.raises(BundleIntegrityError):
        open_forged(base, blob)


def test_manifest_naming_another_custodian_is_refused(base: Sealed, model_bytes: bytes) -> None:
    """Signed by a trusted key, but claiming to be from another custodian."""
    other = seal_bytes(model_bytes, signer=signer_from(2))
    blob = forge(document(other), model_bytes, signer=signer_from(1), key=KEY)
    with pytest.raises(BundleIntegrityError):
        open_forged(base, blob)


def test_version_mismatch_between_header_and_manifest_is_refused(base: Sealed) -> None:
    signed = SignedManifest(
        raw=base.sealed.manifest.to_canonical_json(),
        signature=signer_from(1).sign(b""),
    )
    good = sign_manifest(base.sealed.manifest, signer_from(1))
    assert verify_manifest(
        good, trusted_custodians=[base.custodian], header_version=BundleVersion.V1
    )
    with pytest.raises(BundleIntegrityError):
        verify_manifest(
            signed, trusted_custodians=[base.custodian], header_version=BundleVersion.V1
        )
    with pytest.raises(BundleIntegrityError):
        verify_manifest(good, trusted_custodians=[base.custodian], header_version=2)  # type: ignore[arg-type]


def test_declared_size_larger_than_input_is_refused_before_allocating(
    base: Sealed, model_bytes: bytes
) -> None:
    """A signed manifest claiming 900 GiB on a 2 KB file: refused without a 900 GiB buffer."""
    doc = document(base)
    doc["model"]["size"] = 900 * 2**30
    blob = forge(doc, model_bytes, signer=signer_from(1), key=KEY)
    with pytest.raises(BundleIntegrityError):
        open_forged(base, blob)


def test_custodian_lying_about_the_model_hash_is_caught(base: Sealed, model_bytes: bytes) -> None:
    """Frames authenticate, but the plaintext is not the model the manifest names."""
    doc = document(base)
    doc["model"]["sha256"] = "ab" * 32
    blob = forge(doc, model_bytes, signer=signer_from(1), key=KEY)
    with pytest.raises(BundleIntegrityError):
        open_forged(base, blob)
    assert open_forged(base, blob, verify_digest=False) == model_bytes


def test_manifest_reading_unverified_returns_none_for_junk() -> None:
    assert read_unverified_manifest(b"not json") is None
    assert read_unverified_manifest(b'{"a":1}') is None


def test_sign_refuses_a_manifest_naming_another_key(base: Sealed) -> None:
    with pytest.raises(ValueError, match="different custodian key"):
        sign_manifest(base.sealed.manifest, signer_from(3))


def test_sign_refuses_an_oversized_manifest(base: Sealed) -> None:
    huge = base.sealed.manifest.model_copy(update={"provenance": {"x": "y" * MAX_MANIFEST_SIZE}})
    with pytest.raises(ValueError, match="the limit is 65536"):
        sign_manifest(huge, signer_from(1))


def test_created_time_round_trips(base: Sealed) -> None:
    assert base.sealed.manifest.created == FIXED_TIME
    assert format_timestamp(FIXED_TIME) == "2026-11-28T12:00:00Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(FIXED_TIME.replace(tzinfo=None))


def test_too_many_frames_is_refused(base: Sealed) -> None:
    doc = document(base)
    doc["frame_size"] = 256
    doc["model"]["size"] = 2**40
    with pytest.raises(ValueError, match="too many frames"):
        Manifest.model_validate(doc)


@pytest.mark.parametrize(
    "when",
    ["2026-99-99T99:99:99Z", "2026-02-30T00:00:00Z", "\u0662\u0660\u0662\u0666-01-01T00:00:00Z"],
)
def test_impossible_or_non_ascii_dates_are_refused(base: Sealed, when: str) -> None:
    doc = document(base)
    doc["created_at"] = when
    with pytest.raises(ValueError, match=r"created_at|does not match format|out of range"):
        Manifest.model_validate(doc)
