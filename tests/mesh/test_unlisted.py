"""An unlisted record (a node in private discovery, docs/protocol.md §11.1) reaches the
owner's session peers and goes no further. Pure core: every message a relay sends is
encoded and searched for the unlisted node's id."""

from __future__ import annotations

import random
from dataclasses import replace

from p2pchat.identity import Identity
from p2pchat.mesh.core import Mesh, PresenceChanged
from p2pchat.mesh.membership import State
from p2pchat.mesh.presence import PresenceStore, Verdict, make_record, signed_by_owner
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
    MeshProbeRequest,
    PresenceRecord,
)

NOW = 1_000.0
HIDDEN = Identity(b"\x07" * 32)  # in private discovery
RELAY = Identity(b"\x08" * 32)  # its contact, an ordinary node
OTHERS = [Identity(bytes([60 + i]) * 32) for i in range(6)]  # the relay's other peers
CODEC = Codec()


def hidden_record(version: int = 5) -> PresenceRecord:
    return make_record(HIDDEN, version=version, nick="Hidden", unlisted=True)


def relay_mesh() -> Mesh:
    m = Mesh(RELAY, make_record(RELAY, version=1, nick="Relay"), now=NOW, rng=random.Random(3))
    for other in OTHERS:
        m.receive(
            other.public_key,
            MeshGossip(records=(make_record(other, version=1, nick="Other"),)),
            NOW,
        )
        m.session_up(other.public_key)
    m.take_outgoing()
    m.take_events()
    return m


def naming_hidden(m: Mesh) -> list[tuple[bytes, object]]:
    """Messages for anyone but the hidden node that carry its id anywhere."""
    sent = m.take_outgoing()
    return [
        (peer, message)
        for peer, message in sent
        if peer != HIDDEN.public_key and HIDDEN.public_key in CODEC.encode(message)
    ]


def with_hidden_member(m: Mesh) -> None:
    m.session_up(HIDDEN.public_key)
    m.receive(HIDDEN.public_key, MeshGossip(records=(hidden_record(),)), NOW)


def test_the_flag_is_signed_and_a_listed_record_signs_what_it_always_did() -> None:
    record = hidden_record()
    assert record.unlisted and signed_by_owner(record)
    store = PresenceStore()
    # A relay that clears the flag to pass the record on breaks the signature.
    assert store.offer(replace(record, unlisted=False)).verdict is Verdict.FORGED
    listed = make_record(HIDDEN, version=5, nick="Hidden")
    assert signed_by_owner(listed)
    assert not signed_by_owner(replace(listed, unlisted=True))


def test_a_relay_shows_the_member_but_names_it_to_nobody() -> None:
    m = relay_mesh()
    with_hidden_member(m)
    member = m.members.get(HIDDEN.public_key)
    assert member is not None and member.online and member.record.nick == "Hidden"
    assert any(isinstance(e, PresenceChanged) for e in m.take_events())
    m.flush(NOW)
    assert naming_hidden(m) == []
    assert HIDDEN.public_key not in {e.owner for e in m.members.entries()}
    # Every exchange a neighbour can start: a summary, a full listing, an explicit ask.
    other = OTHERS[0].public_key
    m.receive(other, MeshDigest(bytes(16), held=40), NOW)
    m.receive(other, MeshDigest(bytes(16), (), full=True, want_reply=True), NOW)
    wanted = (DigestEntry(HIDDEN.public_key, 0), DigestEntry(HIDDEN.public_key, 1))
    m.receive(other, MeshDigest(bytes(16), wanted, full=True, want_reply=True), NOW)
    m.receive(other, MeshGraft(wanted), NOW)
    m.receive(other, MeshProbeRequest(7, HIDDEN.public_key), NOW)  # asks, never told
    for step in range(200):  # timers: probes, digests, view upkeep, the tree
        m.tick(NOW + step)
        assert naming_hidden(m) == []


def test_summaries_agree_without_the_hidden_member() -> None:
    m = relay_mesh()
    before = m.members.summary()
    with_hidden_member(m)
    assert m.members.summary() == before


def test_an_unlisted_record_passed_on_by_another_is_not_taken() -> None:
    m = relay_mesh()
    m.receive(OTHERS[0].public_key, MeshGossip(records=(hidden_record(),)), NOW)
    assert m.members.get(HIDDEN.public_key) is None


def test_a_dead_claim_about_it_stays_here_and_no_helper_is_asked() -> None:
    m = relay_mesh()
    for other in OTHERS:  # neighbours, so that helpers could be asked
        m.receive(other.public_key, MeshNeighbor(urgent=True), NOW)
    m.receive(HIDDEN.public_key, MeshNeighbor(urgent=True), NOW)
    with_hidden_member(m)
    m.take_outgoing()
    for step in range(400):  # the hidden node answers nothing: probes fail, it dies
        m.tick(NOW + step * 0.5)
        named = naming_hidden(m)
        assert not any(isinstance(msg, MeshProbeRequest) for _, msg in named)
        assert named == []
    member = m.members.get(HIDDEN.public_key)
    assert member is not None and not member.online
    # A claim from elsewhere about it is held, not passed on.
    m.receive(
        OTHERS[1].public_key, MeshGossip(claims=(MeshClaim(HIDDEN.public_key, 9, "dead"),)), NOW
    )
    m.flush(NOW)
    assert naming_hidden(m) == []


def test_suggestions_to_a_refused_peer_leave_it_out() -> None:
    m = relay_mesh()
    m.receive(HIDDEN.public_key, MeshNeighbor(urgent=True), NOW)
    with_hidden_member(m)
    for other in OTHERS[:5]:
        m.receive(other.public_key, MeshNeighbor(urgent=True), NOW)
    assert HIDDEN.public_key in m.active
    m.take_outgoing()
    m.receive(OTHERS[5].public_key, MeshNeighbor(), NOW)
    replies = [msg for _, msg in m.take_outgoing() if isinstance(msg, MeshNeighborReply)]
    assert replies and not replies[0].accepted and replies[0].suggestions
    assert HIDDEN.public_key not in replies[0].suggestions


def test_it_is_online_while_a_session_shows_it() -> None:
    m = relay_mesh()
    with_hidden_member(m)
    assert m.keeps(HIDDEN.public_key)  # its session is not closed as idle
    m.take_events()
    m.link_down(HIDDEN.public_key, NOW)
    member = m.members.get(HIDDEN.public_key)
    assert member is not None and member.state is State.DEAD
    assert [e.state for e in m.take_events() if isinstance(e, PresenceChanged)] == [State.DEAD]
    assert not m.keeps(HIDDEN.public_key)
    m.flush(NOW)
    assert naming_hidden(m) == []
    # It comes back with the same version (it publishes none on reconnecting).
    m.session_up(HIDDEN.public_key)
    m.receive(HIDDEN.public_key, MeshGossip(records=(hidden_record(),)), NOW)
    assert m.members.get(HIDDEN.public_key) is member and member.online
    assert [e.state for e in m.take_events() if isinstance(e, PresenceChanged)] == [State.ALIVE]


def test_the_owner_hands_its_record_to_session_peers_alone() -> None:
    contact, also_contact, stranger = OTHERS[:3]
    contacts = {contact.public_key, also_contact.public_key}
    m = Mesh(
        HIDDEN,
        hidden_record(1),
        now=NOW,
        rng=random.Random(4),
        protected=contacts.__contains__,
        contacts_only=True,
    )
    m.session_up(contact.public_key)
    m.session_up(stranger.public_key)  # no gate lets a stranger's session get this far
    sent = m.take_outgoing()
    assert sent == [(contact.public_key, MeshGossip(records=(m.own,)))]
    m.session_up(also_contact.public_key)
    m.take_outgoing()
    m.link_down(contact.public_key, NOW)
    record = m.update_presence(NOW, status_text="in a meeting")
    assert record.unlisted
    gossip = [(p, msg) for p, msg in m.take_outgoing() if isinstance(msg, MeshGossip)]
    assert gossip == [(also_contact.public_key, MeshGossip(records=(record,)))]
    # Not even its own digest names it: the peers' summaries leave it out as well.
    assert HIDDEN.public_key not in {e.owner for e in m.members.entries()}
    # A claim about it is answered only where a session is.
    m.receive(
        also_contact.public_key,
        MeshPing(
            1,
            claims=(MeshClaim(HIDDEN.public_key, record.version, "suspect", stranger.public_key),),
        ),
        NOW,
    )
    assert {p for p, _ in m.take_outgoing()} == {also_contact.public_key}


def test_a_third_party_cannot_declare_it_dead_and_grafts_never_get_it() -> None:
    m = relay_mesh()
    with_hidden_member(m)
    claim = MeshClaim(HIDDEN.public_key, 10**12, "dead", OTHERS[0].public_key)
    m.receive(OTHERS[0].public_key, MeshGossip(claims=(claim,)), NOW)
    member = m.members.get(HIDDEN.public_key)
    assert member is not None and member.online  # its session says otherwise
    # The owner itself answers no graft with its unlisted record.
    owner = Mesh(HIDDEN, hidden_record(1), now=NOW, rng=random.Random(5))
    owner.receive(RELAY.public_key, MeshGraft((DigestEntry(HIDDEN.public_key, 1),)), NOW)
    assert not [msg for _, msg in owner.take_outgoing() if isinstance(msg, MeshGossip)]
