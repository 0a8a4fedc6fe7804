"""Canonical bytes for signing.

Rules:

* a signed document is RFC 8785 (JCS) canonical JSON; nothing else is ever signed;
* the signature covers the DSSE pre-authentication encoding (PAE) of a payload type and
  those exact bytes, so a signature for one kind of document never verifies as another;
* the receiver verifies the received bytes first, then parses them with
  :func:`parse_canonical_json`, which refuses duplicate keys and any non-canonical form,
  so the bytes that were signed are the only reading of the document.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_PAE_PREFIX = b"DSSEv1"


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 PAE: ``"DSSEv1" SP len(type) SP type SP len(body) SP body``."""
    t = payload_type.encode("utf-8")
    return b" ".join([_PAE_PREFIX, str(len(t)).encode(), t, str(len(body)).encode(), body])


def canonical_json(document: Any) -> bytes:  # noqa: ANN401 - any JSON value
    """Serialise ``document`` as RFC 8785 canonical JSON.

    Raises ``ValueError`` for values JCS cannot represent (NaN, integers beyond 2^53, ...).
    """
    try:
        return rfc8785.dumps(document)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"cannot canonicalise document: {exc}") from None


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_canonical_json(raw: bytes) -> dict[str, Any]:
    """Parse a JSON object that must already be in canonical form.

    Raises ``ValueError`` if ``raw`` is not UTF-8 JSON, not an object, has duplicate keys,
    or is not byte-for-byte its own canonical serialisation.
    """
    try:
        document = json.loads(raw.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 - one error type for all bad input
    if canonical_json(document) != raw:
        raise ValueError("not in RFC 8785 canonical form")
    return document
