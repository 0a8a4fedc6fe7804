"""A bounded little-endian reader over untrusted bytes.

Rules:

* every read checks its length against what remains *before* slicing; running out is an
  :class:`~modellease.errors.EvidenceFormatError` carrying the offset of the field;
* integers are unsigned little-endian, as in every AMD SEV-SNP firmware structure;
* :meth:`ByteReader.zeros` accounts for bytes that must be zero and reports the offset of
  the first one that is not.
"""

from __future__ import annotations

from modellease.errors import EvidenceFormatError


class ByteReader:
    """Read fixed-size fields in order from ``data``, refusing to read past its end."""

    __slots__ = ("_data", "_offset")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    @property
    def offset(self) -> int:
        """Offset of the next byte to be read."""
        return self._offset

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self._data) - self._offset

    def take(self, size: int, *, field: str) -> bytes:
        """The next ``size`` bytes; ``field`` names them in the error if they are missing."""
        if size < 0:
            raise ValueError("a field size is not negative")
        if size > self.remaining:
            raise EvidenceFormatError(
                f"{field} needs {size} bytes but only {self.remaining} remain", offset=self._offset
            )
        start = self._offset
        self._offset += size
        return self._data[start : self._offset]

    def uint(self, size: int, *, field: str) -> int:
        """The next ``size`` bytes as an unsigned little-endian integer."""
        return int.from_bytes(self.take(size, field=field), "little")

    def zeros(self, size: int, *, field: str) -> None:
        """Consume ``size`` bytes that must all be zero."""
        start = self._offset
        chunk = self.take(size, field=field)
        for index, value in enumerate(chunk):
            if value:
                raise EvidenceFormatError(f"{field} must be zero", offset=start + index)
