"""Who a command-line argument stands for: a peer id, or the name of a contact (or of a
pending request), looked up through the profile's running node or straight on the store.
Ambiguity and absence are errors said in one sentence on stderr, listing the candidates.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import trio

from p2pchat.api.control import call_control
from p2pchat.api.handler import ApiHandler
from p2pchat.cli.common import fail, open_profile_store
from p2pchat.identity import decode_peer_id
from p2pchat.profile import Profile, ProfileLock

READ_ONLY = frozenset({"contacts", "requests", "history", "search"})


def local_call(profile: Profile, command: dict[str, Any]) -> dict[str, Any]:
    """Run one API command: through the profile's running node if there is one, else
    straight on the message store."""
    answer = trio.run(call_control, profile.home, command)
    if answer is not None:
        return answer
    # No node answers. Reading the store beside a node is safe; a change is made only
    # while we hold the profile lock, so no running node misses it.
    lock = contextlib.nullcontext() if command["cmd"] in READ_ONLY else ProfileLock(profile.home)
    with lock, open_profile_store(profile) as store:
        handler = ApiHandler(profile.identity, store)
        return trio.run(handler.handle, command)


def is_peer_id(text: str) -> bool:
    try:
        decode_peer_id(text)
    except ValueError:
        return False
    return True


def peer_id_problem(text: str) -> str | None:
    """Why ``text`` is not a peer id, as a sentence for the user; None if it is one."""
    try:
        decode_peer_id(text)
    except ValueError as error:
        return f"{text!r} is not a peer id ({error})"
    return None


def person(profile: Profile, given: str, *, requests: bool = False) -> str | None:
    """The peer id ``given`` stands for: a peer id, or the name of a contact (or, with
    ``requests``, the nick of a pending request). None after saying why on stderr: nobody
    by that name, or several (listed, so the id can be given instead)."""
    if is_peer_id(given):
        return given
    people: list[tuple[str, str]] = []
    for cmd, field in (("contacts", "name"), ("requests", "nick")):
        if cmd == "requests" and not requests:
            continue
        answer = local_call(profile, {"cmd": cmd})
        if answer["event"] == "error":
            fail(answer)
            return None
        people += [(row[field], row["id"]) for row in answer[cmd] if row[field]]
    wanted = given.casefold()
    found = sorted({peer_id for name, peer_id in people if name.casefold() == wanted})
    if len(found) == 1:
        return found[0]
    who = "contact or request" if requests else "contact"
    if not found:
        print(f"p2pchat: no {who} called {given!r}: give a peer id, or see "
              "p2pchat contacts", file=sys.stderr)  # fmt: skip
    else:
        print(f"p2pchat: {len(found)} {who}s are called {given!r}; give the id of one: "
              + ", ".join(found), file=sys.stderr)  # fmt: skip
    return None
