"""Regression tests for chat robustness: nothing stalls, spins, leaks or dies.

Each test reproduces one bug a review found (and commit 8c266f2 fixed): a message for a
peer that cannot be dialled, a stranger's backlog past the 30 s backstop, a store error
while a session opens, an unencodable echo on the control socket, a replaced session,
a clock cache that grew with every sender, and a first message whose own dial fails
(the runner was not woken to retry it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
from pathlib import Path

import pytest
import trio

from p2pchat.api.control import serve_control
from p2pchat.api.handler import ApiHandler
from p2pchat.chat.sealing import seal
from p2pchat.errors import StoreError
from p2pchat.identity import Identity
from p2pchat.net.server import open_secure_connection
from p2pchat.node.chat import WINDOW, ChatService
from p2pchat.node.events import ChatEvent
from p2pchat.store import StoredMessage, open_store
from p2pchat.wallclock import now_ms
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import ChatMessage, Envelopes
from tests.net.chatpeers import ChatPeer, wait_for
from tests.net.fakes import FakeLinks, FakePeers, WatchedOwner
from tests.net.test_chat import friends, history_texts, peers, state_of


class RunnerPasses:
    """Counts the passes of a chat service's runner, so a test can tell a sleeping
    runner from a spinning one."""

    def __init__(self, chat: ChatService) -> None:
        self._chat = chat

    async def during(self, seconds: float) -> int:
        before = self._chat.runner_passes
        await trio.sleep(seconds)
        return self._chat.runner_passes - before


def unused_address() -> str:
    """A loopback address where nothing listens: dials to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


def dial_backing_off(peer: ChatPeer, other: ChatPeer) -> bool:
    """Whether ``peer``'s last dial to ``other`` failed and it waits before the next."""
    assert peer.node is not None
    return peer.node.links.backing_off(other.key)


def misdirect(peer: ChatPeer, other: ChatPeer, address: str) -> None:
    """``peer`` knows only a wrong address for ``other``: every dial to it fails."""
    assert peer.node is not None
    links = peer.node.links
    resolve = links.owner.resolve
    links.owner = WatchedOwner(
        links.owner, resolve_with=lambda key: [address] if key == other.key else resolve(key)
    )


# ------------------------------------------------------------------ 1: dial fails


async def undiallable_pair(
    tmp_path: Path, nursery: trio.Nursery, *, backoff: float | None = None
) -> tuple[ChatPeer, ChatPeer, ChatPeer]:
    """ann and bob, contacts, in one mesh through rex. They have each other's address
    wrong, so neither can dial the other; rex reaches both, so the mesh (its indirect
    probes go through rex) keeps seeing both alive. ``backoff``: how long ann waits
    after her first failed dial before she dials again."""
    ann, bob, rex = peers(tmp_path, "ann", "bob", "rex")
    for peer in (rex, ann, bob):
        await peer.start(nursery)
    assert ann.node is not None
    if backoff is not None:
        links = ann.node.links
        links.limits = dataclasses.replace(links.limits, backoff_initial=backoff)
    nowhere = unused_address()
    misdirect(ann, bob, nowhere)
    misdirect(bob, ann, nowhere)
    ann.befriend(bob)
    bob.befriend(ann)
    ann.introduce(rex)
    bob.introduce(rex)
    await wait_for(lambda: ann.sees_online(bob), 30, "ann to see bob in the mesh")
    return ann, bob, rex


async def relayed_within_seconds(
    ann: ChatPeer, bob: ChatPeer, sent: StoredMessage, passes: RunnerPasses
) -> None:
    await wait_for(lambda: state_of(ann, sent.msg_id) != "queued", 30, "a relay to take it")
    # The event trails the store (it goes through the node's event channel): wait for it.
    await wait_for(lambda: sent.msg_id in ann.receipts("sent"), 30, "the 'sent' event")
    await wait_for(lambda: bool(bob.received()), 30, "bob to get it from the relay")
    [incoming] = bob.received()
    assert (incoming.text, incoming.relayed) == (sent.text, True)
    assert await passes.during(3.0) < 60, "the chat runner spins"
    assert ann.sees_online(bob), "the premise: bob stayed online for ann's mesh"
    assert not ann.connected_to(bob), "the premise: ann never reached bob"


async def test_a_message_for_a_peer_that_fails_to_dial_goes_to_a_relay(tmp_path: Path) -> None:
    """bob is online for the mesh, but ann's dials to him fail: her message is handed
    to rex within seconds (it used to wait in a backlog forever, the runner spinning)."""
    async with trio.open_nursery() as nursery:
        # A long backoff: ann's dial keeps counting as failing while the message waits.
        ann, bob, _ = await undiallable_pair(tmp_path, nursery, backoff=30.0)
        await wait_for(lambda: dial_backing_off(ann, bob), 30, "a failed dial to bob")
        passes = RunnerPasses(ann.chat)
        sent = ann.chat.send_text(bob.key, "can you hear me?")
        await relayed_within_seconds(ann, bob, sent, passes)
        nursery.cancel_scope.cancel()


async def test_a_first_message_whose_dial_then_fails_goes_to_a_relay(
    tmp_path: Path,
) -> None:
    """As above, but the message itself starts the dial that fails."""
    async with trio.open_nursery() as nursery:
        ann, bob, _ = await undiallable_pair(tmp_path, nursery)
        await wait_for(lambda: not dial_backing_off(ann, bob), 30, "no dial in backoff")
        sent = ann.chat.send_text(bob.key, "can you hear me?")
        # Without the fix the runner is never woken for it: a guard catches "never".
        with trio.move_on_after(30):
            while state_of(ann, sent.msg_id) == "queued":
                await trio.sleep(0.05)
        state = state_of(ann, sent.msg_id)
        nursery.cancel_scope.cancel()
    assert state != "queued", "no relay took it within 30 s"


# ------------------------------------------------------------------ 2: past the window


async def test_a_held_stranger_backlog_neither_spins_nor_loses_order(tmp_path: Path) -> None:
    """eve writes more than a window to ann, who does not know her: ann's gate holds
    them. Past the backstop eve's runner must not spin; once ann accepts, every message
    arrives once, and the conversation shows them in order."""
    count = WINDOW + 44
    ann, eve = peers(tmp_path, "ann", "eve")
    ann.link_retry_ms = eve.link_retry_ms = 500
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        await eve.start(nursery)
        eve.befriend(ann)  # eve knows ann; ann does not know eve
        eve.introduce(ann)
        await wait_for(lambda: eve.connected_to(ann), 30, "a session")
        passes = RunnerPasses(eve.chat)
        texts = [f"m{i:03d}" for i in range(count)]
        sent = [eve.chat.send_text(ann.key, text) for text in texts]
        await wait_for(lambda: len(ann.received()) == 3, 30, "the request")
        assert eve.chat.outbox.waiting_for_room(ann.key) > 0, "the premise: some wait for room"

        assert await passes.during(3.0) < 200, "the chat runner spins past the backstop"
        assert len(ann.received()) == 3

        ann.chat.accept(eve.key)
        await wait_for(lambda: len(ann.received()) >= count, 30, "everything after accepting")
        await wait_for(
            lambda: all(state_of(eve, m.msg_id) == "delivered" for m in sent), 30, "receipts"
        )
        await trio.sleep(0.7)  # past one more backstop: resends must not show up again
        # Once each, and shown in conversation order (clock order, docs/protocol.md
        # §13.1). Arrival order is not promised: a backstop resend that straddles the
        # accept has its tail admitted before the nudge brings the head again.
        received = ann.received()
        assert sorted(m.text for m in received) == texts
        assert [m.text for m in sorted(received, key=lambda m: m.clock)] == texts
        assert history_texts(ann, eve) == texts
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ 3: store error


@pytest.mark.parametrize("side", ["dialler", "acceptor"])
async def test_a_store_error_as_a_session_opens_harms_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    """ChatService.peer_up fails once (a locked database, say) as the session opens:
    the node keeps running, and the session is a working one, not a dead entry."""
    ann, bob = peers(tmp_path, "ann", "bob")
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        await bob.start(nursery)
        ann.befriend(bob)
        bob.befriend(ann)
        victim = bob if side == "dialler" else ann  # bob dials ann
        original = victim.chat.peer_up
        failed: list[bytes] = []

        def failing_once(peer: bytes) -> None:
            if not failed:
                failed.append(peer)
                raise StoreError("database is locked")
            original(peer)

        monkeypatch.setattr(victim.chat, "peer_up", failing_once)
        bob.introduce(ann)
        await wait_for(lambda: bool(failed), 30, "the failing peer_up")
        await wait_for(
            lambda: ann.connected_to(bob) and bob.connected_to(ann),
            30,
            "a session",
        )
        hello = ann.chat.send_text(bob.key, "hello bob")
        reply = bob.chat.send_text(ann.key, "hello ann")
        await wait_for(lambda: state_of(ann, hello.msg_id) == "delivered", 30, "ann's message")
        await wait_for(lambda: state_of(bob, reply.msg_id) == "delivered", 30, "bob's message")
        assert [m.text for m in bob.received()] == ["hello bob"]
        assert [m.text for m in ann.received()] == ["hello ann"]
        assert victim.node is not None
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ 4: control socket


async def test_the_control_socket_survives_a_lone_surrogate(tmp_path: Path) -> None:
    """A lone surrogate is valid JSON text but not UTF-8: echoing it must neither kill
    the control socket nor stop the client's next command from being answered."""
    identity = Identity.generate()
    with open_store(tmp_path / "m.db") as store:
        handler = ApiHandler(identity, store)
        async with trio.open_nursery() as nursery:
            path = await nursery.start(serve_control, tmp_path, handler)
            assert path is not None, "tmp_path too long for a unix socket"
            stream = await trio.open_unix_socket(os.fspath(path))
            async with stream:
                await stream.send_all(b'{"cmd":"version","tag":"\\ud800"}\n')
                await stream.send_all(b'{"cmd":"version","tag":"next"}\n')
                buffer = b""
                with trio.fail_after(5):
                    while buffer.count(b"\n") < 2:
                        data = await stream.receive_some(65536)
                        assert data, "the control socket closed"
                        buffer += data
            first, second = (json.loads(line) for line in buffer.splitlines())
            assert (first["event"], first["tag"]) == ("version", "\ud800")
            assert (second["event"], second["tag"]) == ("version", "next")

            # A new client is served too: the listener is still there.
            with trio.fail_after(5):
                again = await trio.open_unix_socket(os.fspath(path))
                async with again:
                    await again.send_all(b'{"cmd":"version"}\n')
                    answer = await again.receive_some(65536)
            assert json.loads(answer)["event"] == "version"
            nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ 5: replaced session


async def test_a_replaced_session_resends_what_was_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages written to a session that is then replaced (a second dial from the same
    side) were lost with it: the new session resends them, long before the backstop."""
    ann, bob = peers(tmp_path, "ann", "bob")
    # Only the new session may bring them: the backstop must not fire in this test,
    # however slowly it runs.
    ann.link_retry_ms = bob.link_retry_ms = 3_600_000
    async with trio.open_nursery() as nursery:
        await friends(nursery, bob, ann)
        assert ann.node is not None and bob.node is not None
        # Lose what reaches bob on the old session, as a dying connection would.
        lost: set[bytes] = set()
        receive = bob.chat.receive

        def losing(peer: bytes, message: object, address: str) -> None:
            if isinstance(message, ChatMessage):
                lost.add(message.msg_id)
            else:
                receive(peer, message, address)

        monkeypatch.setattr(bob.chat, "receive", losing)
        sent = [ann.chat.send_text(bob.key, f"m{i}") for i in range(5)]
        # Each one at least once: if the first session is replaced on its own (both
        # sides dialled), the new one resends them, and they are lost again.
        await wait_for(lambda: lost >= {m.msg_id for m in sent}, 30, "the messages to be lost")
        monkeypatch.setattr(bob.chat, "receive", receive)
        assert all(state_of(ann, m.msg_id) == "sent" for m in sent)

        # The smaller id dials again: by the tie rule its new session wins on both sides.
        dialler, target = (ann, bob) if ann.key < bob.key else (bob, ann)
        assert dialler.node is not None
        links = dialler.node.links
        old = links.links[target.key]

        async def dial_again() -> None:
            host, port = target.address.rsplit(":", 1)
            async with open_secure_connection(
                host,
                int(port),
                dialler.identity,
                config=links.config,
                expected_peer=target.key,
            ) as connection:
                await links._run(connection, dialled_by=dialler.key, address=target.address)

        nursery.start_soon(dial_again)
        await wait_for(
            lambda: (
                ann.node is not None
                and bob.node is not None
                and links.links.get(target.key) not in (None, old)
                and ann.connected_to(bob)
                and bob.connected_to(ann)
            ),
            30,
            "the replacement session",
        )
        await wait_for(
            lambda: all(state_of(ann, m.msg_id) == "delivered" for m in sent),
            30,
            "the lost messages, resent by the new session",
        )
        await trio.sleep(0.2)
        assert [m.text for m in bob.received()] == [f"m{i}" for i in range(5)]
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ 6: clock cache


async def test_many_senders_leave_the_clock_cache_bounded(tmp_path: Path) -> None:
    """5,000 throwaway identities each send one sealed message through one relay
    session: the cache of conversation clocks stays bounded."""
    me, relay = Identity.generate(), Identity.generate()
    events: list[ChatEvent] = []
    with open_store(tmp_path / "m.db") as store:
        chat = ChatService(
            me,
            store,
            links=FakeLinks(),
            peers=FakePeers(listed=lambda: [relay.public_key]),
            emit=events.append,
            rng=random.Random(1),
        )
        codec = Codec()
        expires = now_ms() + 86_400_000
        envelopes = []
        for _ in range(5000):
            content = codec.encode(ChatMessage(os.urandom(16), 1, now_ms(), "hi"))
            sender = Identity.generate()
            envelopes.append(seal(sender, me.public_key, os.urandom(16), expires, content))
        for start in range(0, len(envelopes), 64):
            batch = Envelopes(tuple(envelopes[start : start + 64]))
            chat.receive(relay.public_key, batch, "127.0.0.1:4000")
        assert chat.process_pending()
        assert events, "the premise: the envelopes were opened"
        assert chat.cached_clocks <= 4097
