"""What a person is called, in every front end (chat window, JSON API, command line).

One rule: the name the user gave the contact, else the nick the person announces now
(their signed presence record), else the nick they gave with a contact request, else
nothing — a front end that must show something shows the short form of the peer id.
Names that two identities share are marked where names are listed (the sidebar flags
such clashes); the id is always there to tell them apart.
"""

from __future__ import annotations


def person_name(*, contact_name: str = "", nick: str = "", request_nick: str = "") -> str:
    """The name to call a person by, or "" when nothing is known but the id."""
    return contact_name or nick or request_nick


def short_id(peer_id: str) -> str:
    """A peer id short enough for a list, long enough to tell two apart at a glance."""
    return f"{peer_id[:4]}…{peer_id[-3:]}"


def shown_name(peer_id: str, name: str) -> str:
    """``name``, or the short id when there is none."""
    return name or short_id(peer_id)


def line_id(peer_id: str) -> str:
    """A peer id as log lines and the command line's sentences show it: enough to grep for."""
    return f"{peer_id[:12]}…"
