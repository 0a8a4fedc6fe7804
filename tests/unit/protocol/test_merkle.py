"""RFC 9162 Merkle trees: the reference vectors of Certificate Transparency's test data
(roots of the first 1 to 8 leaves, two audit paths), the recursive definition, and every
way a path can be wrong."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modellease.protocol.merkle import (
    inclusion_path,
    leaf_hash,
    node_hash,
    root_from_inclusion_path,
    tree_levels,
)

# RFC 6962 / RFC 9162 reference data (google/certificate-transparency's test vectors).
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
PATHS = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}


def mth(hashes: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, as written: split at the largest power of two below n."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


@pytest.mark.parametrize("size", range(1, 9))
def test_the_reference_roots(size: int) -> None:
    levels = tree_levels([leaf_hash(leaf) for leaf in LEAVES[:size]])
    assert levels[-1] == [bytes.fromhex(ROOTS[size - 1])]


@pytest.mark.parametrize(("index", "size"), sorted(PATHS))
def test_the_reference_paths(index: int, size: int) -> None:
    hashes = [leaf_hash(leaf) for leaf in LEAVES[:size]]
    path = inclusion_path(tree_levels(hashes), index)
    assert [p.hex() for p in path] == PATHS[index, size]
    assert root_from_inclusion_path(hashes[index], index, size, path) == bytes.fromhex(
        ROOTS[size - 1]
    )


hash_lists = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70)


@settings(max_examples=300, deadline=None)
@given(hash_lists, st.data())
def test_every_path_leads_to_the_recursive_root(hashes: list[bytes], data: st.DataObject) -> None:
    levels = tree_levels(hashes)
    root = levels[-1][0]
    assert root == mth(hashes)
    index = data.draw(st.integers(0, len(hashes) - 1))
    path = inclusion_path(levels, index)
    assert root_from_inclusion_path(hashes[index], index, len(hashes), path) == root


@settings(max_examples=300, deadline=None)
@given(hash_lists.filter(lambda h: len(h) > 1 and len(set(h)) == len(h)), st.data())
def test_a_wrong_leaf_index_or_path_never_leads_to_the_root(
    hashes: list[bytes], data: st.DataObject
) -> None:
    levels = tree_levels(hashes)
    root, size = levels[-1][0], len(hashes)
    index = data.draw(st.integers(0, size - 1))
    path = inclusion_path(levels, index)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    assert root_from_inclusion_path(hashes[other], index, size, path) != root
    assert root_from_inclusion_path(hashes[index], other, size, path) != root
    # (the size is not checked here: a path can fit trees of several sizes, which is why
    # the size is part of what the batch's signature covers)
    if path:
        at = data.draw(st.integers(0, len(path) - 1))
        flipped = bytes([path[at][0] ^ 1]) + path[at][1:]
        bent = [*path[:at], flipped, *path[at + 1 :]]
        assert root_from_inclusion_path(hashes[index], index, size, bent) != root
        assert root_from_inclusion_path(hashes[index], index, size, path[:-1]) != root
    assert root_from_inclusion_path(hashes[index], index, size, [*path, root]) is None


def test_impossible_arguments() -> None:
    assert root_from_inclusion_path(bytes(32), 3, 3, []) is None
    assert root_from_inclusion_path(bytes(32), -1, 3, []) is None
    with pytest.raises(ValueError, match="at least one leaf"):
        tree_levels([])
    with pytest.raises(ValueError, match="leaf 2 is not in a tree of 2 leaves"):
        inclusion_path(tree_levels([bytes(32), bytes(32)]), 2)
