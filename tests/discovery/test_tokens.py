"""Private announcement tokens (p2pchat.discovery.tokens, docs/protocol.md §10.2):
a contact with the key recognises them within the hour around its clock; nobody else
does, a token replayed in another hour is not recognised, and an observer of a day of
announcements finds nothing two tokens share."""

from __future__ import annotations

import itertools
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pchat.discovery.tokens import (
    TOKEN_CHARS,
    WINDOW_SECONDS,
    make_token,
    parse_token,
    recognise,
)

NOW = 1_796_000_000.0  # a moment in December 2026
ANN, BOB, CAT = (bytes([n]) * 32 for n in (1, 2, 3))


def test_a_contact_with_the_key_recognises_the_token_and_others_do_not() -> None:
    ann_key, bob_key = os.urandom(32), os.urandom(32)
    token = make_token(ann_key, NOW)
    assert len(token) == TOKEN_CHARS and token == token.lower()
    assert recognise(token, {BOB: bob_key, ANN: ann_key}, NOW) == ANN
    assert recognise(token, {BOB: bob_key, CAT: os.urandom(32)}, NOW) is None
    assert recognise(token, {}, NOW) is None


def test_clocks_an_hour_apart_still_recognise_and_a_replay_in_another_hour_does_not() -> None:
    key = os.urandom(32)
    token = make_token(key, NOW)
    for skew in (-WINDOW_SECONDS, 0, WINDOW_SECONDS):
        assert recognise(token, {ANN: key}, NOW + skew) == ANN
    for later in (2, 3, 24, -2):
        assert recognise(token, {ANN: key}, NOW + later * WINDOW_SECONDS) is None


def test_a_day_of_announcements_shares_nothing() -> None:
    # Tokens of one node, one per announcement (24 hours, and 4 network changes an
    # hour): no two share the nonce, the tag, or any 4 bytes in a row.
    key = os.urandom(32)
    raws = []
    for hour in range(24):
        for change in range(4):
            parsed = parse_token(make_token(key, NOW + hour * WINDOW_SECONDS + change * 60))
            assert parsed is not None
            raws.append(parsed[0] + parsed[1])
    assert len({raw[:8] for raw in raws}) == len({raw[8:] for raw in raws}) == len(raws)
    for first, second in itertools.combinations(raws, 2):
        pieces = {first[i : i + 4] for i in range(len(first) - 3)}
        assert not any(second[i : i + 4] in pieces for i in range(len(second) - 3))
    # The same nonce in two hours gives unrelated tags (nothing carries over).
    nonce = os.urandom(8)
    one, two = (parse_token(make_token(key, NOW + h * WINDOW_SECONDS, nonce)) for h in (0, 5))
    assert one is not None and two is not None and one[1] != two[1]


@settings(max_examples=200)
@given(st.text(max_size=64))
def test_anything_else_is_not_a_token(text: str) -> None:
    if parse_token(text) is None:
        assert recognise(text, {ANN: bytes(32)}, NOW) is None
