"""canonical_json's fast path must write exactly what the RFC 8785 reference writes."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from modellease.protocol.envelope import canonical_json, parse_canonical_json

# Characters where JSON encoders are known to differ: controls (short and \u escapes),
# quote and backslash, DEL, the JavaScript line separators, the last BMP code points before
# and after the surrogates (UTF-16 sort order), and characters outside the BMP.
AWKWARD = (
    '\x00\x01\x08\x09\x0a\x0b\x0c\x0d\x1f"\\/\x7f'
    "\u00e9\u2028\u2029\ud7ff\ue000\uffff\U0001f600\U0010ffff"
)
text = st.text(alphabet=st.sampled_from(AWKWARD) | st.characters(exclude_categories=["Cs"]))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.integers(min_value=-(2**60), max_value=2**60)  # some beyond the safe range
    | text
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


def reference(document: Any) -> bytes | None:
    try:
        return rfc8785.dumps(document)
    except rfc8785.CanonicalizationError:
        return None


@settings(max_examples=1000)
@given(documents)
def test_canonical_json_matches_the_rfc8785_reference(document: Any) -> None:
    expected = reference(document)
    if expected is None:
        with pytest.raises(ValueError, match="cannot canonicalise"):
            canonical_json(document)
    else:
        assert canonical_json(document) == expected


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"b": 1, "a": [True, None, "x"]}, b'{"a":[true,null,"x"],"b":1}'),
        ({"\U0001f600": 1, "\ue000": 2}, '{"\U0001f600":1,"\ue000":2}'.encode()),  # UTF-16 order
        ({"k": "\x00\x1f\x7f\u2028"}, b'{"k":"\\u0000\\u001f\x7f\xe2\x80\xa8"}'),
        ({"n": 1.0}, b'{"n":1}'),  # floats take the reference path
    ],
)
def test_canonical_json_known_answers(document: Any, expected: bytes) -> None:
    assert canonical_json(document) == expected
    assert parse_canonical_json(expected) == document


@pytest.mark.parametrize("document", [{"n": 2**53}, {"s": "\ud800"}, {"\ud800": 1}, [float("nan")]])
def test_canonical_json_refuses_what_jcs_cannot_say(document: Any) -> None:
    with pytest.raises(ValueError, match="cannot canonicalise"):
        canonical_json(document)
