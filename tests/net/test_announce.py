"""Announce keys between contacts (docs/protocol.md §10.2): given in session to
contacts only, kept from contacts only, replaced when a contact is blocked — so a
blocked contact's key stops recognising our private announcements."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from p2pchat.discovery.known import Target, parse_invite
from p2pchat.discovery.tokens import make_token, recognise
from tests.net.chatpeers import ChatPeer, wait_for
from tests.net.test_chat import friends, peers


def own_key(peer: ChatPeer) -> bytes:
    assert peer.store is not None
    return peer.store.own_announce_key(peer.key, now=0)[0]


def kept(peer: ChatPeer) -> dict[bytes, bytes]:
    """The announce keys ``peer`` keeps of its contacts."""
    assert peer.store is not None
    return peer.store.contacts_announce_keys()


def rows_for(owner: ChatPeer, peer: bytes) -> int:
    """Rows ``owner`` keeps for ``peer`` at all (a contact or not)."""
    assert owner.store is not None
    return owner.store._count("SELECT count(*) FROM announce_keys WHERE peer = ?", (peer,))


async def test_contacts_exchange_keys_strangers_get_none_and_a_block_replaces_ours(
    tmp_path: Path,
) -> None:
    ann, bob, cat = peers(tmp_path, "ann", "bob", "cat")
    async with trio.open_nursery() as nursery:
        await friends(nursery, ann, bob)
        await wait_for(lambda: kept(bob).get(ann.key) == own_key(ann)
                       and kept(ann).get(bob.key) == own_key(bob), 30, "keys")  # fmt: skip

        # Cat, a stranger in session with ann: neither gives the other a key.
        await cat.start(nursery)
        cat.introduce(ann)
        await wait_for(lambda: cat.connected_to(ann), 30, "cat's session")
        # A key given at the session's start would come before these answers (one
        # session keeps its order): a round trip each way, not a pause.
        assert cat.node is not None and ann.node is not None
        await cat.node.ping(ann.key)
        await ann.node.ping(cat.key)
        assert rows_for(cat, ann.key) == 0 and rows_for(ann, cat.key) == 0

        # Cat becomes a contact while the session is open: ann's key goes at once.
        cat.befriend(ann)
        ann.chat.add_contact(cat.key)
        await wait_for(lambda: kept(cat).get(ann.key) == own_key(ann), 30, "cat's key of ann")

        # Ann blocks bob: a new key, given to cat (in session), not to bob.
        old = own_key(ann)
        ann.chat.set_blocked(bob.key, True)
        new = own_key(ann)
        assert new != old
        await wait_for(lambda: kept(cat).get(ann.key) == new, 30, "cat's new key of ann")
        assert kept(bob).get(ann.key) == old
        token = make_token(new, time.time())
        assert recognise(token, kept(cat), time.time()) == ann.key
        assert recognise(token, kept(bob), time.time()) is None
        for peer in (ann, bob, cat):
            await peer.stop()


async def test_a_hiding_node_answers_contacts_and_invite_codes_and_no_one_else(
    tmp_path: Path,
) -> None:
    """In private discovery a node says who it is only to an initiator that knocks
    with its announce key (a contact) or an outstanding invite code's key: a stranger
    dialling its address learns nothing, not even its id (§3, §10.2)."""
    ann = ChatPeer("ann", tmp_path / "ann", private_discovery=True)
    bob, carol, dave = peers(tmp_path, "bob", "carol", "dave")
    async with trio.open_nursery() as nursery:
        for peer in (ann, bob, carol, dave):
            await peer.start(nursery)
        assert ann.node and bob.node and carol.node and dave.node
        host, port = ann.address.rsplit(":", 1)

        # A stranger at the address: the connection closes; no id, no session.
        notes = await dave.node.connect([Target(host, int(port))])
        assert [n.name for n in notes] != ["verified"]
        assert all(ann.identity.peer_id not in str(n.fields) + n.text for n in notes)
        assert not dave.connected_to(ann) and dave.store is not None
        assert dave.store.contact(ann.key) is None

        # An invite code: knocks with the code's key, and is admitted.
        code = ann.node.invite("ann").code
        notes = await carol.node.connect(parse_invite(code))
        assert [n.name for n in notes] == ["verified"]

        # Bob becomes a contact (ann dials him: hiding is for what comes in), gets
        # ann's key in that session, and then knocks his own way in.
        bob.befriend(ann)
        ann.befriend(bob)
        ann.introduce(bob)
        await wait_for(lambda: kept(bob).get(ann.key) == own_key(ann), 30, "bob has ann's key")
        notes = await bob.node.connect([Target(host, int(port), ann.identity.peer_id)])
        # Answered: verified, or — their session from ann's dial still up — a handshake
        # completed and then closed as a duplicate (which a hidden ann would never
        # have let him reach).
        [note] = notes
        assert note.name == "verified" or "already exists" in note.fields["detail"], notes
        nursery.cancel_scope.cancel()


async def test_contacts_added_by_id_knock_with_the_key_they_share(tmp_path: Path) -> None:
    """Two nodes in private discovery that became contacts by id, before any session
    gave either the other's announce key, still get past each other's hiding: each
    knocks with the key the two share (a Diffie-Hellman of their identity keys). One
    that is blocked does not."""
    ann = ChatPeer("ann", tmp_path / "ann", private_discovery=True)
    eve = ChatPeer("eve", tmp_path / "eve", private_discovery=True)
    fay = ChatPeer("fay", tmp_path / "fay", private_discovery=True)
    async with trio.open_nursery() as nursery:
        for peer in (ann, eve, fay):
            await peer.start(nursery)
        assert ann.node and eve.node and fay.node
        host, port = ann.address.rsplit(":", 1)
        target = [Target(host, int(port), ann.identity.peer_id)]
        for peer in (eve, fay):
            peer.befriend(ann)
            ann.befriend(peer)
        ann.chat.set_blocked(fay.key, True)
        assert kept(eve).get(ann.key) is None  # no session yet: no announce key
        [note] = await eve.node.connect(target)
        assert note.name == "verified", note
        notes = await fay.node.connect(target)
        assert [n.name for n in notes] != ["verified"]
        assert not fay.connected_to(ann)
        nursery.cancel_scope.cancel()
