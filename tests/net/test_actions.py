"""/me lines (issue 14): a message's ``action`` flag crosses the wire, one-to-one and in
rooms, is stored with it, and is what an older peer (which ignores the field) leaves out."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import ChatMessage, RoomText
from tests.net.chatpeers import wait_for
from tests.net.roomnet import RoomNet
from tests.net.test_chat import friends, peers


def test_an_old_peers_message_is_not_an_action_and_an_old_peer_reads_the_text() -> None:
    codec = Codec()
    old = codec.encode(ChatMessage(bytes(16), 1, 2, "waves"))
    assert codec.decode(old) == ChatMessage(bytes(16), 1, 2, "waves", action=False)
    new = codec.decode(codec.encode(ChatMessage(bytes(16), 1, 2, "waves", action=True)))
    assert isinstance(new, ChatMessage) and new.action and new.text == "waves"
    inner = codec.decode(codec.encode(RoomText(clock=1, time=2, text="waves", action=True)))
    assert isinstance(inner, RoomText) and inner.action


async def test_an_action_arrives_as_an_action(tmp_path: Path) -> None:
    ann, bob = peers(tmp_path, "ann", "bob")
    async with trio.open_nursery() as nursery:
        await friends(nursery, bob, ann)
        sent = ann.chat.send_text(bob.key, "waves", action=True)
        plain = ann.chat.send_text(bob.key, "hello")
        await wait_for(lambda: len(bob.received()) == 2, 30, "bob's events")
        assert [(m.text, m.action) for m in bob.received()] == [("waves", True), ("hello", False)]
        assert bob.store is not None and ann.store is not None
        assert bob.store.message(sent.msg_id).action  # type: ignore[union-attr]
        assert not bob.store.message(plain.msg_id).action  # type: ignore[union-attr]
        assert ann.store.message(sent.msg_id).action  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()


async def test_a_room_action_reaches_the_members_as_an_action(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = RoomNet(tmp_path, 2)
    room_id = net.form((1,))
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        net.s(0).send(room_id, "waves", action=True)
        with trio.fail_after(10):
            while not net.texts(1, room_id):
                await net.settle(0.05)
        [row] = net.stores[net.keys[1]].room_history(room_id)
        assert (row.text, row.action) == ("waves", True)
        nursery.cancel_scope.cancel()
    net.close()
