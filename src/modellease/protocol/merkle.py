"""Merkle trees as RFC 9162 (Certificate Transparency 2.0, §2.1) defines them, for receipt
batches: one signature covers many receipts, and each receipt is shown to be covered by
its inclusion path.

Rules:

* a leaf's hash is ``SHA-256(0x00 || leaf)``, an inner node's ``SHA-256(0x01 || left ||
  right)``: the two prefixes keep a leaf from ever passing for an inner node;
* the tree over ``n`` leaves splits at the largest power of two below ``n`` (RFC 9162's
  ``MTH``); built bottom-up, that is pairing each level's nodes left to right and carrying
  an odd last node up unchanged (:func:`tree_levels`); a test holds the two equal;
* :func:`root_from_inclusion_path` is RFC 9162 §2.1.3.2's verification, step for step: it
  returns the root that ``leaf_hash`` at ``index`` with ``path`` implies, or ``None`` when
  the path cannot belong to a tree of ``size`` leaves. The caller compares that root with
  a signed one.

Pure: no I/O, no state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

HASH_SIZE: Final = 32
_LEAF: Final = b"\x00"
_NODE: Final = b"\x01"


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(_LEAF + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def tree_levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree over ``leaf_hashes``, leaves first and the root last."""
    if not leaf_hashes:
        raise ValueError("a Merkle tree has at least one leaf")
    levels = [list(leaf_hashes)]
    while len(level := levels[-1]) > 1:
        parents = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            parents.append(level[-1])  # carried up unchanged
        levels.append(parents)
    return levels


def inclusion_path(levels: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree whose :func:`tree_levels` are given."""
    if not 0 <= index < len(levels[0]):
        raise ValueError(f"leaf {index} is not in a tree of {len(levels[0])} leaves")
    path = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index //= 2
    return path


def root_from_inclusion_path(
    leaf: bytes, index: int, size: int, path: Sequence[bytes]
) -> bytes | None:
    """The root implied by leaf hash ``leaf`` at ``index`` of ``size`` leaves and ``path``
    (RFC 9162 §2.1.3.2), or ``None`` if no tree of that size has such a path."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None
