"""Contacts-only mode between real nodes on 127.0.0.1 (docs/protocol.md §13.6).

A stranger's handshake is refused with `contacts-only` right after the identity proof
and leaves nothing behind; contacts chat as usual; an invite code admits one new
identity once; a contacts-only node neither uses nor serves strangers as relays.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
import trio

from p2pchat.api.handler import ApiHandler
from p2pchat.discovery.known import parse_invite
from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.net.server import open_secure_connection
from p2pchat.node.events import MessageIn, PeerConnected
from p2pchat.store import Store
from tests.net.chatpeers import ChatPeer, wait_for
from tests.net.test_chat import state_of


def rows(store: Store | None) -> dict[str, int]:
    """Rows of every table (invite tokens aside: we make those on purpose)."""
    assert store is not None
    conn: sqlite3.Connection = store._conn
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
    return {n: conn.execute(f"SELECT count(*) FROM {n}").fetchone()[0] for n in names}


def port_of(peer: ChatPeer) -> int:
    return int(peer.address.rsplit(":", 1)[1])


def member_ids(peer: ChatPeer) -> set[str]:
    assert peer.node is not None
    return {encode_peer_id(p.peer) for p in peer.node.members() if not p.is_self}


async def test_a_strangers_handshake_is_refused_and_nothing_of_it_is_kept(tmp_path: Path) -> None:
    ann = ChatPeer("ann", tmp_path / "ann", contacts_only=True)
    eve = ChatPeer("eve", tmp_path / "eve")  # a stranger to ann, in normal mode
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        await eve.start(nursery)
        before = rows(ann.store)

        # By hand: the session opens on our side, and its first message is ann's Close.
        stranger = Identity.generate()
        with trio.fail_after(5):
            async with open_secure_connection(
                "127.0.0.1", port_of(ann), stranger, expected_peer=ann.key
            ) as connection:
                with pytest.raises(ConnectionClosed) as closed:
                    await connection.receive()
        assert closed.value.code == "contacts-only" and closed.value.by_peer
        assert "contacts only" in str(closed.value)

        # A whole node: it learns ann's address, joins, writes to her, pushes gossip.
        eve.introduce(ann)
        eve.chat.send_text(ann.key, "hello ann, remember me?")
        assert eve.node is not None
        await wait_for(lambda: eve.node is not None and eve.node.links.dial_failing(ann.key),
                       10, "eve's dials to be refused")  # fmt: skip
        assert rows(ann.store) == before  # no request, no message, no relay copy
        assert ann.store is not None
        assert ann.store.addresses(eve.key) == [] and ann.store.addresses(stranger.public_key) == []
        assert eve.identity.peer_id not in member_ids(ann)
        assert stranger.peer_id not in member_ids(ann)
        assert not [e for e in ann.events if isinstance(e, PeerConnected)]
        nursery.cancel_scope.cancel()


async def test_contacts_connect_and_chat(tmp_path: Path) -> None:
    ann = ChatPeer("ann", tmp_path / "ann", contacts_only=True)
    bob = ChatPeer("bob", tmp_path / "bob", contacts_only=True)
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        await bob.start(nursery)
        ann.befriend(bob)
        bob.befriend(ann)
        bob.introduce(ann)
        await wait_for(lambda: bob.connected_to(ann), 5, "a session")
        sent = bob.chat.send_text(ann.key, "hi ann")
        await wait_for(lambda: state_of(bob, sent.msg_id) == "delivered", 5, "delivered")
        reply = ann.chat.send_text(bob.key, "hi bob")
        await wait_for(lambda: state_of(ann, reply.msg_id) == "delivered", 5, "the reply")
        assert [m.text for m in ann.received()] == ["hi ann"]
        assert not ann.received()[0].request
        await wait_for(lambda: bob.identity.peer_id in member_ids(ann), 5, "bob in ann's mesh")
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("dialler_contacts_only", [False, True])
async def test_an_invite_code_admits_one_new_identity_once(
    tmp_path: Path, dialler_contacts_only: bool
) -> None:
    ann = ChatPeer("ann", tmp_path / "ann", contacts_only=True)
    carol = ChatPeer("carol", tmp_path / "carol", contacts_only=dialler_contacts_only)
    dave = ChatPeer("dave", tmp_path / "dave")
    async with trio.open_nursery() as nursery:
        for peer in (ann, carol, dave):
            await peer.start(nursery)
        assert ann.node is not None and carol.node is not None and dave.node is not None
        code = ann.node.invite("ann").code
        assert ann.store is not None and carol.store is not None

        notes = await carol.node.connect(parse_invite(code))
        assert [n.name for n in notes] == ["verified"]
        # Both sides made the other a contact: ann by the token, carol by using the code.
        assert (contact := ann.store.contact(carol.key)) is not None and contact.is_contact
        assert (contact := carol.store.contact(ann.key)) is not None and contact.nick == "ann"
        assert ann.store.count_invites(now=2**62) == 0  # spent
        sent = carol.chat.send_text(ann.key, "thanks for the code")
        await wait_for(lambda: state_of(carol, sent.msg_id) == "delivered", 10, "delivered")
        assert not ann.received()[0].request  # a contact's message, not a request

        # Ann also remembers where carol listens (from carol's presence record), so that
        # she can redial after a restart; let that land before the store is compared.
        ann_store = ann.store
        await wait_for(lambda: ann_store.addresses(carol.key) != [], 10, "carol's address")

        # Someone else with the same code: judged without it, so refused.
        before = rows(ann.store)
        notes = await dave.node.connect(parse_invite(code))
        assert [(n.name, n.fields["code"], n.fields["by_peer"]) for n in notes] == [
            ("refused", "contacts-only", True)
        ]
        assert ann.store.contact(dave.key) is None
        assert rows(ann.store) == before

        # Carol uses the spent code again later: she is a contact anyway.
        notes = await carol.node.connect(parse_invite(code))
        assert [n.name for n in notes] == ["verified"]
        nursery.cancel_scope.cancel()


async def test_no_relaying_for_or_through_strangers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bob (a contact of ann's) writes to eve (a stranger to ann) while eve is away: ann
    is online and connected to bob, but takes no copy. Eve, knowing ann's address,
    cannot make ann keep her message to bob, who is away too."""
    ann = ChatPeer("ann", tmp_path / "ann", contacts_only=True)
    bob, eve = ChatPeer("bob", tmp_path / "bob"), ChatPeer("eve", tmp_path / "eve")
    async with trio.open_nursery() as nursery:
        for peer in (ann, bob, eve):
            await peer.start(nursery)
        ann.befriend(bob)
        bob.befriend(ann)
        bob.befriend(eve)
        eve.befriend(bob)
        bob.introduce(ann)
        eve.introduce(ann)
        await wait_for(lambda: bob.connected_to(ann), 5, "bob's session with ann")

        to_eve = bob.chat.send_text(eve.key, "for eve, while she is away")
        to_bob = eve.chat.send_text(bob.key, "for bob, while he is away")
        assert bob.store is not None and eve.store is not None

        def tried(store: Store | None, msg_id: bytes) -> bool:
            assert store is not None
            item = store.outbox_item(msg_id)
            return item is not None and item.attempts >= 1  # the retry that asks relays

        caplog.set_level(logging.INFO, logger="p2pchat.chat")
        await wait_for(lambda: tried(bob.store, to_eve.msg_id), 10, "bob's retry")
        # Bob asked ann, his only online peer, to keep a copy; she said why not.
        await wait_for(lambda: "refused our envelopes: contacts only" in caplog.text, 10,
                       "ann's answer to bob")  # fmt: skip
        await wait_for(lambda: tried(eve.store, to_bob.msg_id), 10, "eve's retry")
        await wait_for(lambda: eve.node is not None and eve.node.links.dial_failing(ann.key),
                       10, "eve's dials to ann to fail")  # fmt: skip
        assert ann.store is not None and ann.store.relay_count() == 0
        for store, msg_id in ((bob.store, to_eve.msg_id), (eve.store, to_bob.msg_id)):
            item = store.outbox_item(msg_id)
            assert item is not None and item.relays == 0
            assert state_of(bob if store is bob.store else eve, msg_id) == "queued"
        nursery.cancel_scope.cancel()


async def test_api_invite_connect_and_ping(tmp_path: Path) -> None:
    ann = ChatPeer("ann", tmp_path / "ann", contacts_only=True)
    bob = ChatPeer("bob", tmp_path / "bob")
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        await bob.start(nursery)
        assert ann.node is not None and bob.node is not None
        assert ann.store is not None and bob.store is not None
        ann_api = ApiHandler(ann.identity, ann.store, ann.node)
        bob_api = ApiHandler(bob.identity, bob.store, bob.node)

        version = await ann_api.handle({"cmd": "version"})
        assert version["contacts_only"] is True
        invite = await ann_api.handle({"cmd": "invite", "tag": 1})
        assert invite["event"] == "invite" and invite["tag"] == 1
        assert invite["addresses"] == [ann.address] and invite["id"] == ann.identity.peer_id
        assert "&t=" in invite["invite"] and invite["expires"] > 0

        # A stranger is unknown to ann: no session, so no ping.
        refused = await ann_api.handle({"cmd": "ping", "id": bob.identity.peer_id})
        assert refused["event"] == "error" and "cannot reach" in refused["error"]

        answer = await bob_api.handle({"cmd": "connect", "target": invite["invite"]})
        assert answer == {
            "event": "connect",
            "state": "verified",
            "id": ann.identity.peer_id,
            "address": ann.address,
            "detail": "",
            "contact": True,
        }
        pinged = await bob_api.handle({"cmd": "ping", "id": ann.identity.peer_id, "count": 3})
        assert pinged["event"] == "ping" and len(pinged["rtt_ms"]) == 3
        assert pinged["min_ms"] <= pinged["avg_ms"] <= pinged["max_ms"]
        assert pinged["address"] == ann.address  # bob dialled ann for it
        back = await ann_api.handle({"cmd": "ping", "id": bob.identity.peer_id})
        assert back["event"] == "ping"  # bob is ann's contact now: the same session

        # Dialling an address (no code): a stranger answers, ann's policy refuses it.
        other = ChatPeer("other", tmp_path / "other")
        await other.start(nursery)
        answer = await ann_api.handle({"cmd": "connect", "target": other.address})
        assert (answer["state"], answer["code"], answer["contact"]) == (
            "refused", "contacts-only", False
        )  # fmt: skip
        bad = await ann_api.handle({"cmd": "connect", "target": "p2pchat:nonsense"})
        assert bad["event"] == "error" and bad["cmd"] == "connect"
        received = [e for e in ann.events if isinstance(e, MessageIn)]
        assert received == []
        nursery.cancel_scope.cancel()
