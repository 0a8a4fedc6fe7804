"""Constant-time comparison: the one helper every secret or digest comparison uses."""

from cryptography.hazmat.primitives.constant_time import bytes_eq


def ct_equal(a: bytes, b: bytes) -> bool:
    """Return whether ``a == b`` in time independent of where they differ."""
    return bytes_eq(bytes(a), bytes(b))
