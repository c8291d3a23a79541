"""The command layer on a store alone (no node runs): contacts, requests, blocking,
verification, history, read marks, offline invite codes, and the commands that say a
node is needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from p2pchat.chat.rules import MessageState
from p2pchat.commands import CommandError, Commands
from p2pchat.commands.base import NO_NODE, readable_errors
from p2pchat.diskfaults import DISK_FULL, disk_fault
from p2pchat.errors import StoreError
from p2pchat.identity import Identity, safety_number
from p2pchat.node.events import Receipt
from p2pchat.store import DATABASE_FILE, Store, open_store

BOB = Identity.generate().public_key
CAT = Identity.generate().public_key


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / DATABASE_FILE)
    yield opened
    opened.close()


@pytest.fixture
def me() -> Identity:
    return Identity.generate()


@pytest.fixture
def commands(me: Identity, store: Store) -> Commands:
    return Commands(me, store)


def write(store: Store, me: bytes, texts: list[str]) -> list[bytes]:
    ids = []
    for clock, text in enumerate(texts, 1):
        msg_id = bytes([clock]) * 16
        store.add_outgoing(msg_id=msg_id, peer=BOB, sender=me, clock=clock, sent_at=clock,
                           text=text, next_attempt_at=0)  # fmt: skip
        ids.append(msg_id)
    return ids


def test_contacts_are_added_named_and_listed(commands: Commands) -> None:
    contact = commands.add_contact(BOB, "bob")
    assert (contact.peer, contact.name, contact.is_contact) == (BOB, "bob", True)
    assert [c.peer for c in commands.contacts()] == [BOB]
    assert commands.contact(BOB) == contact
    assert commands.name_of(BOB) == "bob"
    assert commands.name_of(CAT) == ""  # only the id is known


def test_a_contact_keeps_the_nick_it_gave_and_the_name_we_gave(commands: Commands) -> None:
    commands.add_contact(BOB, nick="bobby")  # from an invite code, say
    contact = commands.add_contact(BOB, "bob")
    assert (contact.nick, contact.petname, contact.name) == ("bobby", "bob", "bob")


def test_a_contact_name_and_ones_own_id_are_refused(commands: Commands, me: Identity) -> None:
    with pytest.raises(CommandError, match='"nick": a nick has at most'):
        commands.add_contact(BOB, "b" * 1000)
    with pytest.raises(CommandError, match="that is your own id"):
        commands.add_contact(me.public_key)
    with pytest.raises(CommandError, match="that is your own id"):
        commands.set_blocked(me.public_key, True)


def test_only_a_pending_request_is_accepted(commands: Commands, store: Store) -> None:
    with pytest.raises(CommandError, match="no pending request"):
        commands.accept(BOB)
    store.add_request(BOB, nick="bobby", address="192.0.2.1:7483", now=1)
    assert [r.peer for r in commands.requests()] == [BOB]
    assert commands.name_of(BOB) == "bobby"  # the request's nick, as nothing better is known
    assert commands.accept(BOB).is_contact
    assert commands.requests() == [] and commands.request(BOB) is None


def test_blocking_and_unblocking(commands: Commands) -> None:
    commands.set_blocked(CAT, True)
    blocked = commands.contact(CAT)
    assert blocked is not None and blocked.blocked and not blocked.is_contact
    commands.set_blocked(CAT, False)
    unblocked = commands.contact(CAT)
    assert unblocked is not None and not unblocked.blocked


def test_verifying_takes_a_contact(commands: Commands, me: Identity) -> None:
    shown = commands.verification(BOB)
    assert shown.safety_number == safety_number(me.public_key, BOB)
    assert not shown.verified
    with pytest.raises(CommandError, match="add this id as a contact"):
        commands.set_verified(BOB, True)
    commands.add_contact(BOB)
    assert commands.set_verified(BOB, True).verified
    assert commands.verification(BOB).verified


def test_history_pages_back_from_a_message(commands: Commands, store: Store, me: Identity) -> None:
    ids = write(store, me.public_key, ["one", "two", "three", "four"])
    assert [m.text for m in commands.history(BOB, limit=2)] == ["three", "four"]
    older = commands.history(BOB, limit=2, before=ids[2])
    assert [m.text for m in older] == ["one", "two"]
    with pytest.raises(CommandError, match="no such message in this conversation"):
        commands.history(CAT, before=ids[0])
    assert commands.message(ids[0]) == older[0]
    assert [c.peer for c in commands.conversations()] == [BOB]


def test_reading_marks_the_unread_messages(commands: Commands, store: Store) -> None:
    for n in range(3):
        store.add_incoming(msg_id=bytes([n + 1]) * 16, peer=BOB, clock=n + 1, sent_at=n,
                           received_at=n, text="hi")  # fmt: skip
    assert commands.mark_read(BOB) == 3
    assert commands.mark_read(BOB) == 0
    assert {m.state for m in commands.history(BOB)} == {MessageState.READ}


def test_an_invite_code_without_a_node_keeps_its_token(commands: Commands, store: Store) -> None:
    invitation = commands.invite_offline(["192.0.2.7:7483"], "ann")
    assert invitation.addresses == ["192.0.2.7:7483"] and invitation.expires > 0
    [target] = commands.parse_target(invitation.code)
    assert (target.address, target.nick, target.source) == ("192.0.2.7:7483", "ann", "invite")
    assert target.invite and store.count_invites(now=0) == 1
    with pytest.raises(CommandError):
        commands.parse_target("p2pchat:nonsense")


def test_the_node_commands_say_a_node_is_needed(commands: Commands) -> None:
    room = b"\x07" * 16
    for needs_node in (
        lambda: commands.send(BOB, "hi"),
        commands.invite,
        commands.peers,
        commands.rooms,
        lambda: commands.create_room("lunch"),
        lambda: commands.room(room),
        lambda: commands.room_members(room),
    ):
        with pytest.raises(CommandError, match=NO_NODE):
            needs_node()
    assert commands.own_presence() is None and commands.presence(BOB) is None
    assert commands.stored_rooms() == [] and commands.room_history(room) == []


def test_a_store_failure_is_a_command_error_with_the_disk_code() -> None:
    with pytest.raises(CommandError) as caught, readable_errors():
        raise StoreError("database or disk is full", code=DISK_FULL)
    assert caught.value.fault and disk_fault(caught.value) == DISK_FULL
    with pytest.raises(CommandError) as refused, readable_errors():
        raise ValueError("a message has at most 4000 characters")
    assert not refused.value.fault and disk_fault(refused.value) is None


async def test_delivery_waits_for_the_receipt(commands: Commands, store: Store) -> None:
    [msg_id] = write(store, commands.me, ["hello"])
    message = commands.message(msg_id)
    assert message is not None
    assert (await commands.delivery(message)).state == "queued"

    async def deliver() -> None:
        await trio.sleep(0.05)
        store.advance([msg_id], MessageState.DELIVERED, at=1)
        commands.observe(Receipt(BOB, msg_id, MessageState.DELIVERED))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(deliver)
        with trio.fail_after(5):
            delivery = await commands.delivery(message, wait=60)
    assert (delivery.message, delivery.state, delivery.relays) == (message, "delivered", 0)
