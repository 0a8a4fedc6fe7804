"""Canonical JSON and the DSSE pre-authentication encoding."""

from __future__ import annotations

import sys

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
    with pytest.raises(ValueError, match="keys must be strings"):
        canonical_json({"a": {1: "json.dumps would write this key as a string"}})


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


def test_keys_beyond_the_bmp_sort_by_utf16_code_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in UTF-16: it sorts before U+FF61, though
    # its code point is higher (JCS, RFC 8785 section 3.2.3). json.dumps would put it last.
    document = {"\uff61": 1, "\U0001f600": 2}
    assert canonical_json(document) == '{"\U0001f600":2,"\uff61":1}'.encode()
    assert parse_canonical_json(canonical_json(document)) == document
    with pytest.raises(ValueError, match="canonical form"):
        parse_canonical_json('{"\uff61":1,"\U0001f600":2}'.encode())


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        canonical_json({"deep": deep})
    with pytest.raises(ValueError, match="not JSON"):
        parse_canonical_json(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")


def test_bytes_with_a_duplicate_key_are_named_as_such() -> None:
    # Equal to their own canonical form they can never be; the error still says why.
    with pytest.raises(ValueError, match="duplicate key 'b'"):
        parse_canonical_json(b'{"a":{"b":1,"b":1}}')


def test_a_cycle_is_refused_and_a_shared_value_written_twice() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises((ValueError, RecursionError)):
        canonical_json({"a": cyclic})
    shared = {"x": [1, 2]}
    assert canonical_json({"b": shared, "a": shared}) == b'{"a":{"x":[1,2]},"b":{"x":[1,2]}}'


def test_nesting_just_deep_enough_to_parse_is_still_a_value_error() -> None:
    # json.loads goes a little deeper than json.dumps can: the gap must not leak a
    # RecursionError (a crash on unauthenticated input) instead of a refusal. Where the gap
    # lies depends on the caller's stack, so every depth up to well past both limits.
    for depth in range(1, 2 * sys.getrecursionlimit()):
        raw = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
        try:
            parsed = parse_canonical_json(raw)
        except ValueError:
            continue
        assert canonical_json(parsed) == raw


def test_a_value_beyond_the_bmp_stays_on_the_fast_path_and_canonical() -> None:
    document = {"b": "\U0001f600", "a": ["\U0001f600"]}
    assert canonical_json(document) == '{"a":["\U0001f600"],"b":"\U0001f600"}'.encode()
