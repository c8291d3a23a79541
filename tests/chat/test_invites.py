"""Invite tokens as a code writes them (docs/protocol.md §10.1), and what is stored."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.chat.invites import TOKEN_BYTES, TOKEN_CHARS, decode_token, encode_token, token_key


@given(st.binary(min_size=TOKEN_BYTES, max_size=TOKEN_BYTES))
def test_tokens_round_trip_as_26_lower_case_base32_characters(token: bytes) -> None:
    text = encode_token(token)
    assert len(text) == TOKEN_CHARS and text == text.lower()
    assert set(text) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert decode_token(text) == token
    assert decode_token(text.upper()) == token


def test_the_known_value() -> None:
    assert encode_token(bytes(range(16))) == "aaaqeayeaudaocajbifqydiob4"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("a" * 25, "25 characters"),
        ("a" * 27, "27 characters"),
        ("a" * 25 + "1", "not base32"),
        ("a" * 25 + "b", "non-canonical"),  # the last character's spare bits must be zero
        ("a" * 24 + "==", "not base32"),
    ],
)
def test_anything_else_is_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decode_token(text)


def test_only_16_byte_tokens_are_written() -> None:
    with pytest.raises(ValueError):
        encode_token(bytes(15))


def test_the_stored_key_is_a_fixed_size_one_way_hash() -> None:
    key = token_key(bytes(16))
    assert len(key) == 16 and key != bytes(16)
    assert key == token_key(bytes(16)) != token_key(bytes(15) + b"\x01")
