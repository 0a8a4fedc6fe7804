"""Canonical JSON and the DSSE pre-authentication encoding."""

from __future__ import annotations

import pytest

from modellease.protocol import canonical_json, pae, parse_canonical_json


def test_pae_matches_the_dsse_specification_example() -> None:
    # DSSE v1 protocol.md: PAE("http://example.com/HelloWorld", "hello world")
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_separates_type_and_body() -> None:
    assert pae("a b", b"c") != pae("a", b"b c")


def test_canonical_json_sorts_and_compacts() -> None:
    assert (
        canonical_json({"b": 1, "a": [True, None, "\u00e9"]})
        == b'{"a":[true,null,"\xc3\xa9"],"b":1}'
    )


def test_canonical_json_refuses_what_jcs_cannot_represent() -> None:
    with pytest.raises(ValueError, match="cannot canonicalise"):
        canonical_json({"n": float("nan")})
    with pytest.raises(ValueError, match="cannot canonicalise"):
        canonical_json({"n": 2**60})


def test_parse_accepts_canonical_objects() -> None:
    assert parse_canonical_json(b'{"a":1,"b":[2]}') == {"a": 1, "b": [2]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"b":1,"a":2}', "canonical form"),
        (b'{"a": 1}', "canonical form"),
        (b'{"a":1,"a":2}', "duplicate key 'a'"),
        (b"[1]", "not a JSON object"),
        (b"\xff", "not JSON"),
        (b'{"a":', "not JSON"),
        (b'{"a":NaN}', "cannot canonicalise"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_parse_refuses_anything_else(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_canonical_json(raw)
