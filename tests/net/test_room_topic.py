"""Room topics (issue 14, /topic): set by any member as a room message, taken by every
member, the latest (by the room's order) winning; a newcomer gets it with its
invitation; it survives a restart (the store)."""

from __future__ import annotations

from pathlib import Path

from p2pchat.store import open_store
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import RoomInvite, RoomText
from tests.net.roomnet import RoomNet


def test_an_older_peer_reads_a_topic_message_as_text() -> None:
    codec = Codec()
    inner = codec.decode(codec.encode(RoomText(clock=1, time=2, text="soup", topic=True)))
    assert isinstance(inner, RoomText) and inner.topic and inner.text == "soup"
    assert RoomText(clock=1, time=2, text="soup").topic is False


async def test_a_topic_spreads_to_members_newcomers_and_restarts(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 3)
    room_id = net.form([1])
    net.s(1).send(room_id, "Friday: soup", topic=True)  # any member may
    net.pump()
    stores = [net.stores[key] for key in net.keys]
    assert [stores[i].room_topic(room_id) for i in (0, 1)] == ["Friday: soup"] * 2
    [row] = [m for m in stores[0].room_history(room_id) if m.topic]
    assert (row.text, row.author) == ("Friday: soup", net.keys[1])
    net.s(0).send(room_id, "Saturday: no soup", topic=True)
    net.s(0).send(room_id, "an ordinary line")
    net.pump()
    assert stores[1].room_topic(room_id) == "Saturday: no soup"

    net.s(0).invite(room_id, net.keys[2])
    net.pump()
    [invitation] = [m for m in net.sent_to(2, RoomInvite)]
    assert invitation.topic == "Saturday: no soup"
    assert stores[2].room_topic(room_id) == "Saturday: no soup"  # shown before joining
    net.s(2).join(room_id)
    net.pump()
    assert stores[2].room_topic(room_id) == "Saturday: no soup"
    path = stores[2].path
    net.close()
    with open_store(path) as again:
        assert again.room_topic(room_id) == "Saturday: no soup"


async def test_a_topic_that_arrives_late_does_not_undo_a_newer_one(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 1)
    room_id = net.form([])
    store = net.stores[net.keys[0]]
    assert store.set_room_topic(room_id, "new", clock=5, msg_id=b"\x01" * 16)
    assert not store.set_room_topic(room_id, "old", clock=4, msg_id=b"\x09" * 16)
    assert not store.set_room_topic(room_id, "from an invitation", clock=0, msg_id=b"")
    assert store.room_topic(room_id) == "new"
    net.close()
