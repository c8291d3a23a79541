"""A full disk never ends the node, and never makes it lie (issue 12, item 5).

Real nodes on loopback; the victim's profile lives on a small tmpfs this test mounts,
fills and frees. While the disk is full the node keeps running, says so (an event),
acknowledges nothing it did not store — neither a contact's message nor a relay
deposit — and once space is back it stores everything the senders retry, each message
once, without a restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from p2pchat.diskfaults import DISK_FULL, DiskRecovered, DiskTrouble
from p2pchat.errors import StoreError
from p2pchat.node.chat import input_weight
from p2pchat.node.events import RoomMessageIn
from p2pchat.store import DATABASE_FILE, open_store
from p2pchat.wire.messages import ChatMessage
from tests.discovery.nodes import Node
from tests.diskfull import Disk, small_disk
from tests.net.chatpeers import ChatPeer, wait_for
from tests.net.roomnet import RoomNet
from tests.net.test_chat import friends, history_texts, state_of
from tests.net.test_chat_robustness import unused_address

DURING = 200  # messages sent while the receiver's disk is full


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    with small_disk(tmp_path / "disk", "16m") as mounted:
        yield mounted


def fill_under(peer: ChatPeer, disk: Disk) -> None:
    """Fill the disk, after emptying the peer's WAL: from then on every commit needs
    new space. (Commits that fit in a WAL grown earlier do work on a full disk, and
    are stored like any other: they would only make the test slower to bite.)"""
    assert peer.store is not None
    peer.store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    disk.fill()


def troubles(peer: ChatPeer) -> list[DiskTrouble]:
    return [event for event in peer.events if isinstance(event, DiskTrouble)]


async def watch_acknowledgements(sender: ChatPeer, receiver: ChatPeer, breaches: list[str]) -> None:
    """All along: every message the sender has seen delivered is in the receiver's
    store (nothing acknowledged that was not stored)."""
    while True:
        if sender.node is not None and receiver.store is not None:
            for msg_id in sender.receipts("delivered"):
                if receiver.store.message(msg_id) is None:
                    breaches.append(msg_id.hex())
        await trio.sleep(0.01)


async def test_messages_sent_to_a_full_disk_are_stored_once_space_returns(
    tmp_path: Path, disk: Disk
) -> None:
    # The sender's own backstop (a resend after 30 s) is taken out of the picture: bob
    # must take back what he held by himself, not wait for ann to try again.
    ann = ChatPeer("ann", tmp_path / "ann", link_retry_ms=3_600_000)
    bob = ChatPeer("bob", disk.root / "bob", link_retry_ms=3_600_000)
    breaches: list[str] = []
    async with trio.open_nursery() as nursery:
        await friends(nursery, ann, bob)
        nursery.start_soon(watch_acknowledgements, ann, bob, breaches)
        before = [ann.chat.send_text(bob.key, f"before {n}") for n in range(5)]
        await wait_for(lambda: all(state_of(ann, m.msg_id) == "delivered" for m in before), 10,
                       "the first messages to be delivered")  # fmt: skip

        fill_under(bob, disk)
        during = [ann.chat.send_text(bob.key, f"during {n:03d}") for n in range(DURING)]
        await wait_for(lambda: bool(troubles(bob)), 10, "bob to report the full disk")
        [trouble] = troubles(bob)
        assert (trouble.code, trouble.file) == (DISK_FULL, str(bob.home / DATABASE_FILE))
        await wait_for(lambda: all(state_of(ann, m.msg_id) == "sent" for m in during), 10,
                       "ann to send them all")  # fmt: skip
        await trio.sleep(2.0)  # bob has tried (and retried) to store them by now
        assert bob.node is not None  # bob is still running ...
        assert not any(state_of(ann, m.msg_id) == "delivered" for m in during)  # ... no ack
        assert history_texts(bob, ann) == [f"before {n}" for n in range(5)]
        assert not any(e.text.startswith("during") for e in bob.received())

        disk.free()
        await wait_for(lambda: all(state_of(ann, m.msg_id) == "delivered" for m in during), 30,
                       "everything to be delivered once space is back")  # fmt: skip
        await wait_for(lambda: any(isinstance(e, DiskRecovered) for e in bob.events), 5,
                       "bob to report the recovery")  # fmt: skip
        expected = [f"before {n}" for n in range(5)] + [f"during {n:03d}" for n in range(DURING)]
        assert history_texts(bob, ann) == expected  # all of them, once, in order

        def shown() -> list[str]:
            return sorted(e.text for e in bob.received() if e.text.startswith("during"))

        await wait_for(lambda: len(shown()) >= DURING, 5, "bob's message events")
        await trio.sleep(0.5)
        assert shown() == expected[5:]  # one event per message, no duplicate
        assert len(troubles(bob)) == 1  # reported once, not per write
        assert breaches == []
        nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_input_dropped_while_the_disk_is_full_is_asked_for_again(
    tmp_path: Path, disk: Disk
) -> None:
    """While the disk is full, held input fills the input bound and the rest is dropped
    (unacknowledged). Once the held input is stored, its senders are nudged to resend
    at once: with their own backstop out of the picture, everything still arrives."""
    held = 40 * input_weight(ChatMessage(bytes(16), 1, 0, "during 000"))  # 40 of them
    ann = ChatPeer("ann", tmp_path / "ann", link_retry_ms=3_600_000, max_input_bytes=held)
    bob = ChatPeer("bob", disk.root / "bob", link_retry_ms=3_600_000, max_input_bytes=held)
    async with trio.open_nursery() as nursery:
        await friends(nursery, ann, bob)
        fill_under(bob, disk)
        during = [ann.chat.send_text(bob.key, f"during {n:03d}") for n in range(DURING)]
        await wait_for(lambda: bool(troubles(bob)), 10, "bob to report the full disk")
        await wait_for(lambda: bob.chat.inbox.dropped > 0, 10, "bob to drop input")
        assert bob.chat.inbox.waiting <= 40
        disk.free()
        await wait_for(lambda: all(state_of(ann, m.msg_id) == "delivered" for m in during), 30,
                       "everything to be delivered, the dropped part after a nudge")  # fmt: skip
        assert history_texts(bob, ann) == [f"during {n:03d}" for n in range(DURING)]
        # One event per message: the events drain into bob's list one per checkpoint.
        await wait_for(lambda: len(bob.received()) >= DURING, 5, "bob's message events")
        await trio.sleep(0.5)
        assert sorted(e.text for e in bob.received()) == [f"during {n:03d}" for n in range(DURING)]
        nursery.cancel_scope.cancel()


async def test_our_queued_messages_outlive_a_full_disk(tmp_path: Path, disk: Disk) -> None:
    """Ann's disk fills while her messages wait for bob. Bob comes and gets them (ann's
    retries still send; only her bookkeeping fails); nothing of her outbox is lost, and
    once space is back her receipts land and every message shows delivered, once."""
    ann = ChatPeer("ann", disk.root / "ann")
    bob = ChatPeer("bob", tmp_path / "bob")
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        ann.befriend(bob)
        queued = [ann.chat.send_text(bob.key, f"queued {n:02d}") for n in range(20)]
        fill_under(ann, disk)
        await bob.start(nursery)
        bob.befriend(ann)
        bob.introduce(ann)
        await wait_for(lambda: len(bob.received()) == 20, 20, "bob to get them all")
        await wait_for(lambda: bool(troubles(ann)), 10, "ann to report her full disk")
        assert ann.store is not None and ann.node is not None
        assert len(ann.store.outbox(bob.key)) == 20  # kept: nothing of the outbox lost
        assert not ann.receipts("delivered")  # not recorded, so not shown

        disk.free()
        await wait_for(lambda: all(state_of(ann, m.msg_id) == "delivered" for m in queued), 20,
                       "ann to take bob's receipts")  # fmt: skip
        assert ann.store.outbox(bob.key) == []
        await trio.sleep(0.5)
        assert sorted(e.text for e in bob.received()) == [f"queued {n:02d}" for n in range(20)]
        assert history_texts(bob, ann) == [f"queued {n:02d}" for n in range(20)]
        nursery.cancel_scope.cancel()


async def test_a_relay_with_a_full_disk_takes_nothing_it_cannot_keep(
    tmp_path: Path, disk: Disk
) -> None:
    """Bob is away; ann's message goes to relays. Rex, the only relay, has a full disk:
    he must not say he took the envelope (ann would count on him). Once space is back he
    takes it, and bob gets it from him."""
    ann, bob = ChatPeer("ann", tmp_path / "ann"), ChatPeer("bob", tmp_path / "bob")
    rex = ChatPeer("rex", disk.root / "rex")
    async with trio.open_nursery() as nursery:
        for peer in (rex, ann, bob):
            await peer.start(nursery)
        ann.befriend(bob)
        bob.befriend(ann)
        ann.introduce(rex)
        bob.introduce(rex)
        await wait_for(lambda: ann.chat.reachable(bob.key), 10, "the mesh to form")
        await bob.stop()
        await wait_for(lambda: not ann.chat.reachable(bob.key), 5, "ann to see bob leave")

        fill_under(rex, disk)
        sent = ann.chat.send_text(bob.key, "kept for you")
        await wait_for(lambda: bool(troubles(rex)), 15, "rex to fail to keep the envelope")
        await trio.sleep(2.0)
        assert ann.store is not None
        [item] = ann.store.outbox(bob.key)
        assert (item.relays, state_of(ann, sent.msg_id)) == (0, "queued")  # nobody took it
        assert rex.store is not None and rex.store.relay_count() == 0
        assert rex.node is not None

        disk.free()
        await wait_for(lambda: state_of(ann, sent.msg_id) == "sent", 20, "rex to take it now")
        assert rex.store.relay_count(recipient=bob.key) == 1
        await bob.start(nursery)
        bob.introduce(rex)
        await wait_for(lambda: [e.text for e in bob.received()] == ["kept for you"], 15,
                       "bob to get it from rex")  # fmt: skip
        nursery.cancel_scope.cancel()


def test_a_daemon_on_a_full_disk_survives_a_verified_peer(
    tmp_path: Path, nodes: list[Node]
) -> None:
    """The crash of the issue: a full disk while a known peer is verified ended the
    daemon (an unguarded write of peers.json). Now it runs on, reports the fault as an
    `error` event, refuses to claim what it cannot store, and works again when space
    comes back."""
    home = tmp_path / "ann"  # the mount point itself: the daemon's stderr stays outside
    bob_home = tmp_path / "bob"
    bob_address = unused_address()
    with small_disk(home, "16m") as disk:
        ann = Node(home, "--no-mdns", "--listen", "127.0.0.1:0", "--peer", bob_address,
                   stdin=True)  # fmt: skip
        nodes.append(ann)
        ann.command({"cmd": "version", "tag": 0})
        ann.wait_for("version", tag=0)
        disk.fill()
        bob = Node(bob_home, "--no-mdns", "--listen", bob_address)  # now ann verifies bob
        nodes.append(bob)
        ann.wait_for("verified", timeout=30, id=bob.id)
        peers_json = ann.wait_for("error", timeout=10, file=str(home / "peers.json"))
        assert peers_json["code"] == DISK_FULL and "cmd" not in peers_json
        assert "the disk is full" in peers_json["error"]
        ann.wait_for("connected", timeout=10, id=bob.id)

        ann.command({"cmd": "send", "to": bob.id, "text": "no room for this", "tag": 1})
        refused = ann.wait_for("error", tag=1)
        assert (refused["cmd"], refused["code"]) == ("send", DISK_FULL)  # not "queued"
        assert ann.process.poll() is None

        disk.free()
        ann.command({"cmd": "send", "to": bob.id, "text": "room again", "wait": 20, "tag": 2})
        answer = ann.wait_for("send", timeout=30, tag=2)
        assert answer["state"] == "delivered"
        ann.wait_for("recovered", timeout=10, file=str(home / DATABASE_FILE))
        # Its neighbour on the same disk recovers with it, and what it held is saved.
        ann.wait_for("recovered", timeout=10, file=str(home / "peers.json"))
        assert bob.id in json.loads((home / "peers.json").read_text())
        bob.wait_for("message", text="room again")
        assert not any(e.get("text") == "no room for this" for e in bob.seen)
        assert ann.stop() == 0
        stderr = ann.log_path.read_text()
    assert "Traceback" not in stderr
    # One line per file and fault (within the interval), not one per failed write.
    lines = [line for line in stderr.splitlines() if "the disk is full" in line]
    assert 1 <= len(lines) <= 4, lines


async def test_room_messages_the_disk_refuses_are_stored_once_it_takes_them(
    tmp_path: Path, disk: Disk
) -> None:
    """The room broadcast delivers a message once: if the disk refuses it then, it is
    held and stored when the disk takes it (nothing asks the tree for it again)."""
    net = RoomNet(tmp_path, 2)
    bob = net.keys[1]
    try:
        net.stores[bob].close()
        net.stores[bob] = open_store(disk.root / DATABASE_FILE)  # bob's store on the tmpfs
        net.start(1)
        room_id = net.form([1])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(net.s(1).run)
            net.stores[bob]._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            disk.fill()
            for n in range(20):
                net.s(0).send(room_id, f"room {n:02d}")
                net.pump()
            assert net.texts(1, room_id) == []
            assert len(net.s(1).storage.held[room_id]) == 20
            assert not [e for e in net.events[bob] if isinstance(e, RoomMessageIn)]
            disk.free()
            await wait_for(lambda: len(net.texts(1, room_id)) == 20, 10, "the held messages")
            assert net.texts(1, room_id) == [f"room {n:02d}" for n in range(20)]
            shown = [e.text for e in net.events[bob] if isinstance(e, RoomMessageIn)]
            assert sorted(shown) == [f"room {n:02d}" for n in range(20)]  # once each
            assert not net.s(1).storage.held
            nursery.cancel_scope.cancel()
    finally:
        net.close()


async def test_a_batch_of_sends_the_disk_refuses_sends_none_of_them(
    tmp_path: Path, disk: Disk
) -> None:
    """Sends stored together (the API's pipelined sends, docs/api.md §2.1) are handed to
    the network only after their commit: when it fails, the peer gets none of them."""
    ann = ChatPeer("ann", disk.root / "ann")
    bob = ChatPeer("bob", tmp_path / "bob")
    async with trio.open_nursery() as nursery:
        await friends(nursery, ann, bob)
        fill_under(ann, disk)
        with pytest.raises(StoreError) as refused:
            ann.chat.send_texts([(bob.key, f"lost {n}", False) for n in range(20)])
        assert refused.value.code == DISK_FULL
        disk.free()
        after = ann.chat.send_text(bob.key, "after")
        await wait_for(lambda: state_of(ann, after.msg_id) == "delivered", 10, "delivery")
        # One session, in order: had any of the batch gone out, it would be here first.
        assert history_texts(bob, ann) == ["after"]
        assert history_texts(ann, bob) == ["after"]
        nursery.cancel_scope.cancel()
