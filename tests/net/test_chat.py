"""Chat between real nodes over loopback: delivery, receipts, order, dedup, relays,
the contact-request gate and blocking."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio

from p2pchat.node.events import ContactRequest, MessageIn
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import ChatMessage, Envelopes
from tests.net.chatpeers import ChatPeer, wait_for


def peers(tmp_path: Path, *names: str, relay: bool = True) -> list[ChatPeer]:
    return [ChatPeer(name, tmp_path / name, relay=relay) for name in names]


async def friends(nursery: trio.Nursery, first: ChatPeer, second: ChatPeer) -> None:
    """Start two nodes that are each other's contacts, and wait for their session."""
    await first.start(nursery)
    await second.start(nursery)
    first.befriend(second)
    second.befriend(first)
    second.introduce(first)
    await wait_for(lambda: second.connected_to(first), 30, "a session")


def history_texts(peer: ChatPeer, other: ChatPeer) -> list[str]:
    assert peer.store is not None
    return [m.text for m in peer.store.history(other.key, limit=10_000)]


def state_of(peer: ChatPeer, msg_id: bytes) -> str:
    assert peer.store is not None
    stored = peer.store.message(msg_id)
    assert stored is not None
    return stored.state


async def test_a_message_is_delivered_acknowledged_and_read(tmp_path: Path) -> None:
    ann, bob = peers(tmp_path, "ann", "bob")
    async with trio.open_nursery() as nursery:
        await friends(nursery, bob, ann)
        sent = ann.chat.send_text(bob.key, "hello bob")
        assert sent.state == ("sent" if ann.connected_to(bob) else "queued")
        await wait_for(lambda: state_of(ann, sent.msg_id) == "delivered", 30, "delivered")
        # Events trail the store (they go through each node's event channel): wait for them.
        await wait_for(lambda: bool(bob.received()), 30, "bob's event")
        [incoming] = bob.received()
        assert (incoming.text, incoming.request, incoming.relayed) == ("hello bob", False, False)
        assert incoming.peer == ann.key
        await wait_for(lambda: sent.msg_id in ann.receipts("delivered"), 30, "ann's event")
        assert state_of(bob, sent.msg_id) == "received"

        reply = bob.chat.send_text(ann.key, "hi ann")
        await wait_for(lambda: state_of(bob, reply.msg_id) == "delivered", 30, "the reply")
        assert bob.chat.mark_read(ann.key) == 1
        await wait_for(lambda: state_of(ann, sent.msg_id) == "read", 30, "the read receipt")
        assert bob.chat.mark_read(ann.key) == 0
        # The reply was written after bob saw ann's message: it sorts after it on both sides.
        assert history_texts(ann, bob) == history_texts(bob, ann) == ["hello bob", "hi ann"]
        nursery.cancel_scope.cancel()


async def test_order_and_no_duplicates_under_a_burst_and_resends(tmp_path: Path) -> None:
    ann, bob = peers(tmp_path, "ann", "bob")
    async with trio.open_nursery() as nursery:
        await friends(nursery, bob, ann)
        sent = [ann.chat.send_text(bob.key, f"m{i:04d}") for i in range(1000)]
        assert ann.node is not None
        # Resend the first 100 again, as a sender does after a lost session.
        for stored in sent[:100]:
            ann.node.links.send(
                bob.key, ChatMessage(stored.msg_id, stored.clock, stored.sent_at, stored.text)
            )
        await wait_for(
            lambda: all(state_of(ann, m.msg_id) == "delivered" for m in sent), 30, "all delivered"
        )
        await trio.sleep(0.2)
        assert len(bob.received()) == 1000
        assert history_texts(bob, ann) == [f"m{i:04d}" for i in range(1000)]
        nursery.cancel_scope.cancel()


async def test_offline_delivery_through_a_relay(tmp_path: Path) -> None:
    """Bob is away: ann's message goes to the relay, sealed. Ann leaves too. Bob comes
    back and gets it from the relay; his receipt waits at the relay until ann is back."""
    ann, bob, rex = peers(tmp_path, "ann", "bob", "rex")
    async with trio.open_nursery() as nursery:
        for peer in (rex, ann, bob):
            await peer.start(nursery)
        ann.befriend(bob)
        bob.befriend(ann)
        ann.introduce(rex)
        bob.introduce(rex)
        await wait_for(lambda: ann.chat.reachable(bob.key), 30, "the mesh to form")
        await bob.stop()
        await wait_for(lambda: not ann.chat.reachable(bob.key), 30, "ann to see bob leave")

        sent = ann.chat.send_text(bob.key, "while you were away")
        await wait_for(lambda: state_of(ann, sent.msg_id) == "sent", 30, "the relay to take it")
        assert rex.store is not None and rex.store.relay_count(recipient=bob.key) >= 1
        [(_, blob)] = rex.store.relay_for(bob.key, now=0)
        assert b"while you were away" not in blob  # the relay cannot read it
        await ann.stop()

        await bob.start(nursery)
        bob.introduce(rex)
        await wait_for(lambda: bool(bob.received()), 30, "bob to get it from the relay")
        [incoming] = bob.received()
        assert (incoming.text, incoming.relayed) == ("while you were away", True)
        await wait_for(lambda: rex.store is not None and not rex.store.relay_count(
            recipient=bob.key), 30, "the relay to forget it")  # fmt: skip
        # bob's receipt is sealed for ann, who is away: the relay keeps it for her
        await wait_for(lambda: rex.store is not None and rex.store.relay_count(
            recipient=ann.key) > 0, 30, "the receipt to wait at the relay")  # fmt: skip

        await ann.start(nursery)
        ann.introduce(rex)
        await wait_for(lambda: state_of(ann, sent.msg_id) == "delivered", 30, "the receipt")
        await trio.sleep(0.5)
        assert len(bob.received()) == 1
        assert history_texts(bob, ann) == ["while you were away"]
        nursery.cancel_scope.cancel()


async def test_relaying_can_be_switched_off(tmp_path: Path) -> None:
    ann, bob = peers(tmp_path, "ann", "bob")
    [rex] = peers(tmp_path, "rex", relay=False)
    async with trio.open_nursery() as nursery:
        for peer in (rex, ann, bob):
            await peer.start(nursery)
        ann.befriend(bob)
        ann.introduce(rex)
        bob.introduce(rex)
        await wait_for(lambda: ann.chat.reachable(bob.key), 30, "the mesh to form")
        await bob.stop()
        await wait_for(lambda: not ann.chat.reachable(bob.key), 30, "ann to see bob leave")
        sent = ann.chat.send_text(bob.key, "nobody keeps this")
        await trio.sleep(2.5)  # past the first retry, when relays are asked
        assert state_of(ann, sent.msg_id) == "queued"
        assert rex.store is not None and rex.store.relay_count() == 0
        nursery.cancel_scope.cancel()


async def test_strangers_land_in_requests_until_accepted(tmp_path: Path) -> None:
    ann, eve = peers(tmp_path, "ann", "eve")
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        await eve.start(nursery)
        eve.befriend(ann)  # eve knows ann; ann does not know eve
        eve.introduce(ann)
        await wait_for(lambda: eve.chat.reachable(ann.key), 30, "eve to see ann")
        sent = [eve.chat.send_text(ann.key, f"hi {i}") for i in range(5)]
        await wait_for(lambda: len(ann.received()) == 3, 30, "the request")
        assert all(m.request for m in ann.received())
        [request] = [e for e in ann.events if isinstance(e, ContactRequest)]
        assert request.peer == eve.key and request.text == "hi 0"
        assert ann.store is not None and ann.store.request(eve.key) is not None
        await wait_for(
            lambda: all(state_of(eve, m.msg_id) == "delivered" for m in sent[:3]), 30, "receipts"
        )
        states = [state_of(eve, m.msg_id) for m in sent]
        assert states == ["delivered"] * 3 + ["sent"] * 2  # two are held, not acknowledged

        ann.chat.accept(eve.key)
        await wait_for(lambda: len(ann.received()) == 5, 30, "the held messages after accepting")
        assert not ann.received()[-1].request
        assert ann.store.request(eve.key) is None
        await wait_for(
            lambda: all(state_of(eve, m.msg_id) == "delivered" for m in sent), 30, "receipts"
        )
        assert history_texts(ann, eve) == [f"hi {i}" for i in range(5)]
        nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_a_blocked_identity_is_refused_at_the_handshake(tmp_path: Path) -> None:
    ann, eve = peers(tmp_path, "ann", "eve")
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        await eve.start(nursery)
        ann.chat.set_blocked(eve.key, True)
        eve.befriend(ann)
        eve.introduce(ann)
        sent = eve.chat.send_text(ann.key, "let me in")
        await trio.sleep(1.5)
        assert ann.node is not None and eve.key not in ann.node.links.links
        assert not ann.received()
        # eve's side finishes its half of the handshake before ann's refusal arrives, so
        # the message may count as sent; it is never acknowledged and stays queued.
        assert state_of(eve, sent.msg_id) in ("queued", "sent")
        assert eve.store is not None and [i.msg_id for i in eve.store.outbox()] == [sent.msg_id]
        assert ann.store is not None and ann.store.message(sent.msg_id) is None

        ann.chat.set_blocked(eve.key, False)
        ann.befriend(eve)
        eve.introduce(ann)
        await wait_for(lambda: bool(ann.received()), 30, "the message once unblocked")
        nursery.cancel_scope.cancel()


async def test_blocked_senders_relayed_envelopes_are_dropped(tmp_path: Path) -> None:
    ann, eve, rex = peers(tmp_path, "ann", "eve", "rex")
    async with trio.open_nursery() as nursery:
        for peer in (rex, ann, eve):
            await peer.start(nursery)
        ann.introduce(rex)
        eve.introduce(rex)
        eve.befriend(ann)
        await wait_for(lambda: eve.chat.reachable(ann.key), 30, "the mesh to form")
        ann.chat.set_blocked(eve.key, True)
        await ann.stop()
        await wait_for(lambda: not eve.chat.reachable(ann.key), 30, "eve to see ann leave")
        eve.chat.send_text(ann.key, "through the back door")
        assert rex.store is not None
        await wait_for(lambda: rex.store is not None and rex.store.relay_count() > 0, 30, "relay")
        await ann.start(nursery)
        ann.introduce(rex)
        await wait_for(lambda: rex.store is not None and rex.store.relay_count() == 0, 30, "offer")
        await trio.sleep(0.3)
        assert not [e for e in ann.events if isinstance(e, MessageIn)]
        assert ann.store is not None and ann.store.count_messages() == 0
        nursery.cancel_scope.cancel()


async def test_blocking_closes_an_open_session(tmp_path: Path) -> None:
    ann, eve = peers(tmp_path, "ann", "eve")
    async with trio.open_nursery() as nursery:
        await friends(nursery, ann, eve)
        assert ann.node is not None
        ann.chat.set_blocked(eve.key, True)
        await wait_for(lambda: ann.node is not None and eve.key not in ann.node.links.links, 30,
                       "the session to close")  # fmt: skip
        sent = eve.chat.send_text(ann.key, "still here?")
        await trio.sleep(1.0)
        assert ann.store is not None and ann.store.message(sent.msg_id) is None
        nursery.cancel_scope.cancel()


async def test_unshowable_text_is_dropped_and_the_rest_of_the_batch_kept(tmp_path: Path) -> None:
    ann, eve = peers(tmp_path, "ann", "eve")
    async with trio.open_nursery() as nursery:
        await friends(nursery, ann, eve)
        assert eve.node is not None
        hostile = ChatMessage(bytes(range(16)), 1, 0, "\x1b[31mred alert\x1b[0m")
        eve.node.links.send(ann.key, hostile)
        good = eve.chat.send_text(ann.key, "a normal line")
        await wait_for(lambda: state_of(eve, good.msg_id) == "delivered", 30, "the good one")
        assert ann.store is not None and ann.store.message(hostile.msg_id) is None
        assert [m.text for m in ann.received()] == ["a normal line"]
        nursery.cancel_scope.cancel()


async def test_writing_to_a_stranger_accepts_them(tmp_path: Path) -> None:
    ann, eve = peers(tmp_path, "ann", "eve")
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        await eve.start(nursery)
        eve.introduce(ann)
        await wait_for(lambda: eve.chat.reachable(ann.key), 30, "eve to see ann")
        eve.chat.send_text(ann.key, "hi, we met at the conference")  # eve adds ann
        await wait_for(lambda: bool(ann.received()), 30, "the request")
        assert ann.received()[0].request
        assert ann.store is not None and ann.store.request(eve.key) is not None
        reply = ann.chat.send_text(eve.key, "oh hi!")  # replying accepts the request
        assert ann.store.request(eve.key) is None
        contact = ann.store.contact(eve.key)
        assert contact is not None and contact.is_contact
        await wait_for(lambda: state_of(ann, reply.msg_id) == "delivered", 30, "the reply")
        assert not [m for m in eve.received() if m.request]
        nursery.cancel_scope.cancel()


async def test_a_misbehaving_relay_can_neither_alter_nor_duplicate(tmp_path: Path) -> None:
    """Two relays keep bob's message. One alters its copy: bob refuses it (and that relay
    forgets it). The other delivers the true copy, then replays it: bob keeps one."""
    ann, bob, rex, ray = peers(tmp_path, "ann", "bob", "rex", "ray")
    async with trio.open_nursery() as nursery:
        for peer in (rex, ray, ann, bob):
            await peer.start(nursery)
        ann.befriend(bob)
        bob.befriend(ann)
        for peer in (ann, bob, ray):
            peer.introduce(rex)
        await wait_for(lambda: ann.chat.reachable(bob.key), 30, "the mesh to form")
        await bob.stop()
        await wait_for(lambda: not ann.chat.reachable(bob.key), 30, "ann to see bob leave")
        sent = ann.chat.send_text(bob.key, "the real text")

        def held(relay: ChatPeer) -> bool:
            return relay.store is not None and relay.store.relay_count(recipient=bob.key) > 0

        await wait_for(lambda: held(rex) and held(ray), 30, "both relays to keep a copy")
        await ann.stop()
        assert rex.store is not None and ray.store is not None
        codec = Codec()
        [(envelope_id, blob)] = rex.store.relay_for(bob.key, now=0)
        [original] = codec.decode(blob).envelopes
        box = bytearray(original.box)
        box[-1] ^= 1
        altered = dataclasses.replace(original, box=bytes(box))
        rex.store.relay_remove([envelope_id])
        rex.store.relay_put(envelope_id=envelope_id, sender=original.sender,
                            recipient=bob.key, expires_at=original.expires, stored_at=0,
                            envelope=codec.encode(Envelopes((altered,))))  # fmt: skip
        [(_, good_blob)] = ray.store.relay_for(bob.key, now=0)

        await bob.start(nursery)
        bob.introduce(rex)
        bob.introduce(ray)
        await wait_for(lambda: bool(bob.received()), 30, "the true copy")
        await wait_for(lambda: not held(rex) and not held(ray), 30, "both relays to forget")
        # ray replays what it delivered
        ray.store.relay_put(
            envelope_id=envelope_id,
            sender=original.sender,
            recipient=bob.key,
            expires_at=original.expires,
            stored_at=0,
            envelope=good_blob,
        )
        ray.chat.relay.offer_relayed(bob.key, 0)
        await wait_for(lambda: not held(ray), 30, "the replay to be answered")
        assert [m.text for m in bob.received()] == ["the real text"]
        assert bob.store is not None and bob.store.count_messages() == 1
        assert history_texts(bob, ann) == ["the real text"]
        assert sent.msg_id == bob.received()[0].msg_id
        nursery.cancel_scope.cancel()
