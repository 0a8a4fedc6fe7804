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


_MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 (I-JSON): integers beyond this are refused


def _plain(value: Any) -> bool:  # noqa: ANN401 - any JSON value
    r"""True if ``value`` holds only types ``json.dumps`` writes exactly as RFC 8785 does.

    Those are exact ``dict`` with ``str`` keys, ``list``, ``str``, ``bool``, ``None`` and
    ``int`` within I-JSON's safe range: for these, JCS and ``json.dumps(ensure_ascii=False,
    sort_keys=True, separators=(",", ":"))`` escape strings the same way (``\"``, ``\\``,
    ``\b \f \n \r \t``, other controls as lowercase ``\u00xx``, everything else literal)
    and write integers as plain decimals. Key order agrees as long as no key holds a
    character beyond the Basic Multilingual Plane (JCS sorts by UTF-16 code units): that is
    checked by :func:`canonical_json`, on the written text and, only if the text has such a
    character, on the keys. Anything else (floats, large
    integers, subclasses, and a container met twice, which may be a cycle) goes to the
    reference implementation. Iterative, so it cannot exhaust the stack.
    """
    stack = [value]
    containers: set[int] = set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -_MAX_SAFE_INTEGER <= item <= _MAX_SAFE_INTEGER:
                continue
            return False
        if id(item) in containers:
            return False
        containers.add(id(item))
        if kind is dict:
            for key in item:  # a loop, not any(): this runs for every message on the hot path
                if type(key) is not str:
                    return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        else:
            return False
    return True


# Made once (json.dumps makes one per call). No cycle check: _plain lets no container be met
# twice, and only plain documents are written with it.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), check_circular=False
)


def _dumps(document: Any) -> str:  # noqa: ANN401 - a plain document
    return _ENCODER.encode(document)


def _within_bmp(text: str) -> bool:
    return text.isascii() or max(text) <= "\uffff"


def _keys_within_bmp(document: Any) -> bool:  # noqa: ANN401 - a plain document
    """True if no object key holds a character beyond the BMP (``document`` is plain)."""
    stack = [document]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            if any(k and max(k) > "\uffff" for k in item):
                return False
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return True


def canonical_json(document: Any) -> bytes:  # noqa: ANN401 - any JSON value
    """Serialise ``document`` as RFC 8785 canonical JSON.

    Plain documents (:func:`_plain`, and no key with a character beyond the Basic
    Multilingual Plane: all of modellease's messages) are written by the standard library's
    C encoder, several times faster; the rest by ``rfc8785``. A test compares the two on
    generated documents. Raises ``ValueError`` for values JCS cannot represent (NaN,
    integers beyond 2^53, lone surrogates, ...).
    """
    if _plain(document):
        text = _dumps(document)
        if _within_bmp(text) or _keys_within_bmp(document):
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    "cannot canonicalise document: a string is not valid Unicode"
                ) from None
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
    or is not byte-for-byte its own canonical serialisation. (Bytes that equal their own
    canonical form have no duplicate keys: that form writes each key once, and the same
    bytes always parse the same way. Duplicates are looked for only to name them.)
    """
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 - one error type for all bad input
    try:
        canonical = canonical_json(document)
    except RecursionError:  # nested deeper than the encoder goes (json.loads went a bit further)
        raise ValueError("not JSON: nested too deeply") from None
    if canonical != raw:
        json.loads(raw, object_pairs_hook=_refuse_duplicates)  # the clearer error, if it is so
        raise ValueError("not in RFC 8785 canonical form")
    return document
