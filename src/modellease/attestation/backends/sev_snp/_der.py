"""The two DER values AMD puts inside its certificate extensions, read strictly.

Rules:

* an SPL is a DER INTEGER (tag 0x02) in 0..255, minimally encoded: one content byte below
  0x80, or 0x00 followed by a byte from 0x80; nothing else (no long lengths, no padding,
  no negative numbers, nothing after it);
* a name is a DER IA5String (tag 0x16) with a short-form length covering exactly the rest of
  the value, and only ASCII content;
* anything else is an :class:`~modellease.errors.EvidenceFormatError` naming the extension.
"""

from __future__ import annotations

from modellease.errors import EvidenceFormatError

_INTEGER = 0x02
_IA5_STRING = 0x16
_SHORT_LENGTH_LIMIT = 0x80


def der_uint8(value: bytes, *, what: str) -> int:
    """The value of a DER INTEGER that must lie in 0..255."""
    if len(value) == 3 and value[:2] == bytes([_INTEGER, 1]) and value[2] < 0x80:
        return value[2]
    if len(value) == 4 and value[:3] == bytes([_INTEGER, 2, 0]) and value[3] >= 0x80:
        return value[3]
    raise EvidenceFormatError(f"{what} is not a DER INTEGER in 0..255")


def der_ia5_string(value: bytes, *, what: str) -> str:
    """The text of a short DER IA5String."""
    if (
        len(value) < 2
        or value[0] != _IA5_STRING
        or value[1] >= _SHORT_LENGTH_LIMIT
        or len(value) != 2 + value[1]
        or not value[2:].isascii()
    ):
        raise EvidenceFormatError(f"{what} is not a short DER IA5String")
    return value[2:].decode("ascii")
