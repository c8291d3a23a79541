"""Strangers against a `p2pchat daemon --contacts-only` (issue 12, item 8).

Each stranger completes the Noise handshake by hand and, in the same write as handshake
message 3, pipelines what a stranger would want kept: a chat message (a contact
request), its own presence record (a member), a nudge. The daemon refuses each one with
`Close{contacts-only}` right after the identity proof, and its database gains nothing:
every table has the rows it had before. Then an invite code admits one newcomer once,
and a contact is served as usual.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import nacl.signing

from p2pchat.discovery.known import parse_invite
from p2pchat.wallclock import now_ms
from tests.adversary import wire
from tests.adversary.bounds import CONTACT_WITHIN
from tests.adversary.client import deliver, identity, new_message, open_session
from tests.adversary.daemon import Daemon

STRANGERS = 20


def table_rows(home: Path) -> dict[str, int]:
    """Every table's row count, read beside the running daemon (WAL allows a reader)."""
    uri = f"file:{home / 'messages.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")]
        return {n: conn.execute(f"SELECT count(*) FROM {n}").fetchone()[0] for n in names}


async def refused_with(port: int, *, invite: bytes = b"") -> str | None:
    """One stranger's attempt: the code of the daemon's Close (None: it was admitted)."""
    stranger = identity()
    _, message = new_message(1, "hello, let me in")
    record = wire.presence_record(
        nacl.signing.SigningKey(stranger.seed), version=now_ms(), nick="stranger"
    )
    peer = await open_session(
        port,
        stranger,
        with_message_3=[message, wire.gossip([record]), wire.receipt([])],
        invite=invite,
    )
    try:
        if await peer.round_trip():
            return None
        return peer.session.closed_with
    finally:
        await peer.aclose()


async def test_strangers_are_refused_and_leave_nothing(daemons: Callable[..., Daemon]) -> None:
    victim = daemons("victim", "--contacts-only")
    assert victim.events("listening")[0]["contacts_only"] is True
    contact = identity()
    victim.add_contact(contact.peer_id)
    before = table_rows(victim.home)
    members_before = victim.members()

    codes = [await refused_with(victim.port) for _ in range(STRANGERS)]
    assert codes == ["contacts-only"] * STRANGERS
    assert victim.alive()
    assert table_rows(victim.home) == before  # no request, no message, no address
    assert victim.members() == members_before == []
    assert victim.events("connected") == []
    assert victim.events("request") == victim.events("message") == []
    assert victim.ok({"cmd": "requests"})["requests"] == []

    # An invite code admits its first redeemer, once.
    code = victim.ok({"cmd": "invite"})["invite"]
    token = parse_invite(code)[0].invite
    assert await refused_with(victim.port, invite=token) is None  # admitted
    contacts = victim.ok({"cmd": "contacts"})["contacts"]
    assert len(contacts) == 2  # the contact we added, and the newcomer
    assert await refused_with(victim.port, invite=token) == "contacts-only"  # spent
    assert await refused_with(victim.port, invite=bytes(16)) == "contacts-only"  # unknown
    assert len(victim.ok({"cmd": "contacts"})["contacts"]) == 2

    # The newcomer's pipelined message was a contact's: stored, not a request.
    message = victim.wait_for("message", text="hello, let me in")
    assert message["request"] is False and len(victim.events("message")) == 1

    # A contact is served as usual.
    seconds = await deliver(victim.port, contact, "hi, it's me", within=CONTACT_WITHIN)
    assert seconds is not None, "the contact's message was not delivered"


async def test_a_refusal_from_the_initiator_side(daemons: Callable[..., Daemon]) -> None:
    """The daemon refuses strangers when it dials too: an address given without an
    identity is dialled, and a stranger answering gets HandshakeReject{contacts-only}
    in message 3 (the dialler's side of the same check)."""
    stranger = daemons("stranger")
    victim = daemons("victim", "--contacts-only")
    answer = victim.ok({"cmd": "connect", "target": stranger.address})
    assert (answer["state"], answer["code"], answer["contact"]) == (
        "refused", "contacts-only", False
    )  # fmt: skip
    assert victim.events("connected") == [] and stranger.events("connected") == []
    assert victim.members() == []
