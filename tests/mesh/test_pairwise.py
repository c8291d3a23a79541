"""Presence with a contact reached through Tor is pairwise (docs/protocol.md §19.5): its
record, though listed, reaches us alone and goes no further; it hears our versions
from us, and nothing of the LAN's members; a LAN session ends all that. Pure core:
every message is encoded and searched for ids that must not be in it."""

from __future__ import annotations

import random

from p2pchat.identity import Identity
from p2pchat.mesh.core import Mesh, PresenceChanged
from p2pchat.mesh.membership import State
from p2pchat.mesh.presence import make_record, signed_by_owner
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import (
    DigestEntry,
    MeshClaim,
    MeshDigest,
    MeshGossip,
    MeshGraft,
    MeshNeighbor,
    MeshNeighborReply,
    MeshPing,
    PresenceRecord,
)

NOW = 1_000.0
ME = Identity(b"\x11" * 32)
REMOTE = Identity(b"\x12" * 32)  # a contact at home, through Tor
LAN = [Identity(bytes([80 + i]) * 32) for i in range(6)]  # our LAN's members
CODEC = Codec()


def remote_record(version: int = 3, status: str = "avail") -> PresenceRecord:
    return make_record(REMOTE, version=version, nick="Remote", status=status)


def lan_mesh() -> Mesh:
    """Our mesh with six LAN members, all of them our neighbours."""
    m = Mesh(ME, make_record(ME, version=1, nick="Me"), now=NOW, rng=random.Random(5))
    for other in LAN:
        m.session_up(other.public_key)
        record = make_record(other, version=1, nick="Lan")
        m.receive(other.public_key, MeshGossip(records=(record,)), NOW)
        m.receive(other.public_key, MeshNeighbor(urgent=True), NOW)
    m.take_outgoing()
    m.take_events()
    return m


def with_remote(m: Mesh) -> None:
    m.session_up(REMOTE.public_key, pairwise=True)
    m.receive(REMOTE.public_key, MeshGossip(records=(remote_record(),)), NOW)


def naming(m: Mesh, who: bytes, *, to_anyone_but: bytes) -> list[tuple[bytes, object]]:
    return [
        (peer, message)
        for peer, message in m.take_outgoing()
        if peer != to_anyone_but and who in CODEC.encode(message)
    ]


def test_the_remote_contact_is_shown_but_named_to_no_lan_member() -> None:
    m = lan_mesh()
    with_remote(m)
    member = m.members.get(REMOTE.public_key)
    assert member is not None and member.online and member.record.nick == "Remote"
    assert [e.state for e in m.take_events() if isinstance(e, PresenceChanged)] == [State.ALIVE]
    assert m.keeps(REMOTE.public_key)  # the session stays open: it is how we see it
    assert naming(m, REMOTE.public_key, to_anyone_but=REMOTE.public_key) == []
    assert REMOTE.public_key not in {e.owner for e in m.members.entries()}
    # What a LAN member can ask for: a full listing, an explicit ask, a graft.
    lan = LAN[0].public_key
    wanted = (DigestEntry(REMOTE.public_key, 0),)
    m.receive(lan, MeshDigest(bytes(16), (), full=True, want_reply=True), NOW)
    m.receive(lan, MeshDigest(bytes(16), wanted, full=True, want_reply=True), NOW)
    m.receive(lan, MeshGraft(wanted), NOW)
    # A newer version of its record: news to us, but passed on to nobody.
    m.receive(REMOTE.public_key, MeshGossip(records=(remote_record(4, "away"),)), NOW)
    assert member.record.status == "away"
    for step in range(200):  # probes, digests, view upkeep, the tree
        m.tick(NOW + step)
        assert naming(m, REMOTE.public_key, to_anyone_but=REMOTE.public_key) == []


def test_the_remote_contact_hears_nothing_of_the_lan() -> None:
    m = lan_mesh()
    with_remote(m)
    remote = REMOTE.public_key
    # It asks what a mesh neighbour would ask: to be one, a ping, a digest.
    m.receive(remote, MeshNeighbor(urgent=True), NOW)
    m.receive(remote, MeshPing(1), NOW)
    m.receive(remote, MeshDigest(bytes(16), (), full=True, want_reply=True), NOW)
    m.receive(remote, MeshGraft((DigestEntry(LAN[0].public_key, 0),)), NOW)
    sent = [message for peer, message in m.take_outgoing() if peer == remote]
    assert MeshNeighborReply(False) in sent
    for step in range(200):
        m.tick(NOW + step)
        sent += [message for peer, message in m.take_outgoing() if peer == remote]
    assert remote not in m.active
    for message in sent:
        encoded = CODEC.encode(message)
        assert not any(other.public_key in encoded for other in LAN), message
    # Only our own record ever went to it.
    assert {type(message) for message in sent} <= {MeshGossip, MeshNeighborReply}


def test_it_gets_our_record_on_the_session_and_each_new_version() -> None:
    m = lan_mesh()
    m.session_up(REMOTE.public_key, pairwise=True)
    assert m.take_outgoing() == [(REMOTE.public_key, MeshGossip(records=(m.own,)))]
    record = m.update_presence(NOW, status="dnd", status_text="deep work")
    to_remote = [msg for peer, msg in m.take_outgoing() if peer == REMOTE.public_key]
    assert to_remote == [MeshGossip(records=(record,))]
    m.leave(NOW + 1)
    to_remote = [msg for peer, msg in m.take_outgoing() if peer == REMOTE.public_key]
    assert [r.status for msg in to_remote for r in msg.records] == ["offline"]


def test_our_addresses_never_go_through_tor() -> None:
    """Tor hides where we are: the peer gets our record signed anew without them, at the
    same version; the LAN still gets them."""
    here = ("198.18.0.5:7483", "[fd00::5]:7483")
    m = Mesh(ME, make_record(ME, version=1, nick="Me", addresses=here), now=NOW,
             rng=random.Random(6))  # fmt: skip
    lan = LAN[0].public_key
    m.session_up(lan)
    m.receive(lan, MeshNeighbor(urgent=True), NOW)
    m.session_up(REMOTE.public_key, pairwise=True)
    m.update_presence(NOW, status="away")
    m.leave(NOW + 1)
    sent = m.take_outgoing()
    to_remote = [r for p, msg in sent if p == REMOTE.public_key
                 for r in getattr(msg, "records", ())]  # fmt: skip
    to_lan = [r for p, msg in sent if p == lan for r in getattr(msg, "records", ())]
    assert [(r.version, r.status) for r in to_remote] == [(1, "avail"), (2, "away"),
                                                          (3, "offline")]  # fmt: skip
    assert all(r.addresses == () and signed_by_owner(r) for r in to_remote)
    assert to_lan and all(r.addresses == here for r in to_lan if r.owner == ME.public_key)


def test_only_its_own_record_is_taken_from_it() -> None:
    m = lan_mesh()
    stranger = Identity(b"\x13" * 32)
    m.session_up(REMOTE.public_key, pairwise=True)
    records = (remote_record(), make_record(stranger, version=1, nick="Passed on"))
    claim = MeshClaim(LAN[0].public_key, 1, "dead", REMOTE.public_key)
    m.receive(REMOTE.public_key, MeshGossip(records=records, claims=(claim,)), NOW)
    assert m.members.get(REMOTE.public_key) is not None
    assert m.members.get(stranger.public_key) is None
    lan_member = m.members.get(LAN[0].public_key)
    assert lan_member is not None and lan_member.online


def test_offline_when_its_session_ends_and_back_when_it_returns() -> None:
    m = lan_mesh()
    with_remote(m)
    m.take_events()
    m.link_down(REMOTE.public_key, NOW)
    member = m.members.get(REMOTE.public_key)
    assert member is not None and member.state is State.DEAD
    assert [e.state for e in m.take_events() if isinstance(e, PresenceChanged)] == [State.DEAD]
    assert not m.keeps(REMOTE.public_key)
    m.flush(NOW)
    assert naming(m, REMOTE.public_key, to_anyone_but=REMOTE.public_key) == []
    m.session_up(REMOTE.public_key, pairwise=True)
    assert member.online
    assert [e.state for e in m.take_events() if isinstance(e, PresenceChanged)] == [State.ALIVE]


def test_a_lan_session_makes_it_an_ordinary_member() -> None:
    m = lan_mesh()
    with_remote(m)
    m.take_outgoing()
    m.session_up(REMOTE.public_key, pairwise=False)  # it came to the office
    assert not m.members.is_pairwise(REMOTE.public_key)
    assert REMOTE.public_key in {e.owner for e in m.members.entries()}
    m.receive(REMOTE.public_key, MeshNeighbor(urgent=True), NOW)
    assert REMOTE.public_key in m.active
    # Its next version is news again, passed on to the LAN.
    m.receive(REMOTE.public_key, MeshGossip(records=(remote_record(5, "away"),)), NOW)
    m.flush(NOW)
    assert naming(m, REMOTE.public_key, to_anyone_but=REMOTE.public_key) != []


def test_a_neighbour_that_moves_to_tor_leaves_the_views() -> None:
    m = lan_mesh()
    remote = LAN[0].public_key
    assert remote in m.active
    m.session_up(remote, pairwise=True)  # its LAN session went; it came back through Tor
    assert remote not in m.active
    assert remote not in m.passive
    assert remote not in {e.owner for e in m.members.entries()}


def test_peers_seen_only_as_sessions_are_not_remembered_as_pairwise() -> None:
    m = lan_mesh()
    for index in range(50):  # sessions through Tor that never sent a record
        peer = bytes([200, index]) * 16
        m.session_up(peer, pairwise=True)
        m.link_down(peer, NOW)
    assert not any(m.members.is_pairwise(bytes([200, i]) * 16) for i in range(50))
