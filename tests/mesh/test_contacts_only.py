"""A contacts-only mesh is made of contacts alone (docs/protocol.md §13.6). Pure core."""

from __future__ import annotations

import random

from p2pchat.identity import Identity
from p2pchat.mesh.admission import GossipRefused
from p2pchat.mesh.core import Mesh
from p2pchat.mesh.presence import make_record
from p2pchat.wire.messages import (
    DigestEntry,
    MeshDigest,
    MeshGossip,
    MeshNeighbor,
    MeshNeighborReply,
)

NOW = 1_000.0


def ids(n: int) -> list[Identity]:
    return [Identity(bytes([40 + i]) * 32) for i in range(n)]


def mesh(contacts: set[bytes], *, contacts_only: bool = True) -> Mesh:
    me = Identity(b"\x01" * 32)
    return Mesh(
        me,
        make_record(me, version=1, nick="me"),
        now=NOW,
        rng=random.Random(1),
        protected=contacts.__contains__,
        contacts_only=contacts_only,
    )


def test_only_contacts_records_are_admitted_from_a_contacts_gossip() -> None:
    friend, other_friend, stranger = ids(3)
    contacts = {friend.public_key, other_friend.public_key}
    m = mesh(contacts)
    records = tuple(
        make_record(i, version=1, nick=n)
        for i, n in ((friend, "bob"), (other_friend, "carol"), (stranger, "eve"))
    )
    m.receive(friend.public_key, MeshGossip(records=records), NOW)
    assert m.members.get(friend.public_key) is not None
    assert m.members.get(other_friend.public_key) is not None
    assert m.members.get(stranger.public_key) is None
    assert m.admission.dropped_members == 0  # not a rate refusal: nobody misbehaved
    events = m.take_events()
    assert events and not any(isinstance(e, GossipRefused) for e in events)
    # The same gossip in normal mode admits everyone.
    normal = mesh(contacts, contacts_only=False)
    normal.receive(friend.public_key, MeshGossip(records=records), NOW)
    assert normal.members.get(stranger.public_key) is not None


def test_a_stranger_is_never_asked_nor_accepted_as_a_neighbour() -> None:
    friend, stranger = ids(2)
    m = mesh({friend.public_key})
    m.introduce([stranger.public_key, friend.public_key], NOW)
    assert m.passive == [friend.public_key]
    asked = [p for p, msg in m.take_outgoing() if isinstance(msg, MeshNeighbor)]
    assert asked == [friend.public_key]
    m.receive(stranger.public_key, MeshNeighbor(urgent=True), NOW)
    assert stranger.public_key not in m.active
    replies = [(p, msg) for p, msg in m.take_outgoing() if isinstance(msg, MeshNeighborReply)]
    assert replies == [(stranger.public_key, MeshNeighborReply(False))]
    m.mark_proven(stranger.public_key)
    assert not m.members.is_proven(stranger.public_key)


def test_a_digest_exchange_asks_for_contacts_only() -> None:
    friend, other_friend, stranger = ids(3)
    m = mesh({friend.public_key, other_friend.public_key})
    entries = tuple(DigestEntry(i.public_key, 5) for i in (friend, other_friend, stranger))
    m.receive(friend.public_key, MeshDigest(bytes(16), entries, full=True, want_reply=True), NOW)
    asked = [
        e.owner
        for _, msg in m.take_outgoing()
        if isinstance(msg, MeshDigest) and msg.full and not msg.want_reply
        for e in msg.entries
    ]
    assert sorted(asked) == sorted([friend.public_key, other_friend.public_key])
