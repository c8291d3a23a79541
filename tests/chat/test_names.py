"""One naming rule for every front end (p2pchat/chat/names.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from p2pchat.chat.names import person_name, short_id, shown_name
from p2pchat.identity import Identity

PEER_ID = Identity(bytes([3]) * 32).peer_id


def test_the_contact_name_wins_then_the_announced_nick_then_the_request_nick() -> None:
    assert person_name(contact_name="Mum", nick="alice", request_nick="al") == "Mum"
    assert person_name(nick="alice", request_nick="al") == "alice"
    assert person_name(request_nick="al") == "al"
    assert person_name() == ""


def test_a_front_end_that_must_show_something_shows_the_short_id() -> None:
    assert shown_name(PEER_ID, "") == short_id(PEER_ID) == f"{PEER_ID[:4]}…{PEER_ID[-3:]}"
    assert shown_name(PEER_ID, "alice") == "alice"


@given(st.text(max_size=5), st.text(max_size=5), st.text(max_size=5))
def test_the_name_is_the_first_one_known(contact: str, nick: str, request: str) -> None:
    name = person_name(contact_name=contact, nick=nick, request_nick=request)
    assert name == next((n for n in (contact, nick, request) if n), "")
