"""One stranger cannot inflate the membership (issue 12, docs/protocol.md §12.6).

Pure cores on a fake clock. The attacker's identities are unsigned (see tests/mesh/lan.py):
the limits act before any signature is checked, so the counts are those real records
would give; tests/net/test_node_bounds.py repeats the attack with signed records.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
from dataclasses import replace

import pytest

from p2pchat.identity import Identity
from p2pchat.mesh.admission import GossipRefused
from p2pchat.mesh.buckets import bucket_hashes
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.core import MemberForgotten, Mesh
from p2pchat.mesh.eviction import EvictionOrder, Standing
from p2pchat.mesh.membership import Change, Membership, State
from p2pchat.mesh.presence import make_record
from p2pchat.sim.engine import SimSettings
from p2pchat.sim.scenarios import simulate
from p2pchat.wire.messages import (
    DigestEntry,
    MeshClaim,
    MeshDigest,
    MeshGossip,
    MeshNeighbor,
    PresenceRecord,
)
from tests.mesh.lan import ATTACKER, FAKE, Lan, fake_records, trusting

CONFIG = MeshConfig()
MiB = 1024 * 1024


def budget(seconds: float, config: MeshConfig = CONFIG) -> float:
    """The most new members one peer can have admitted after ``seconds``."""
    return config.new_member_burst + config.new_member_rate * seconds


def gossip_records(sent: list[tuple[bytes, object]]) -> list[PresenceRecord]:
    return [r for _, m in sent if isinstance(m, MeshGossip) for r in m.records]


def test_100000_fakes_pushed_in_10_s_leave_the_budget_at_the_victim_and_its_neighbour() -> None:
    lan = Lan(2)
    lan.join()
    victim, neighbour = lan.meshes
    assert neighbour.me in victim.active
    start = lan.now
    lan.attack(victim, 100_000, seconds=10)
    elapsed = lan.now - start
    at_victim, at_neighbour = lan.fakes(victim), lan.fakes(neighbour)
    # The targets are <= 10,000 and <= 1,000; the configured rates give less.
    assert 0 < at_neighbour <= at_victim <= budget(elapsed) <= 1_000
    assert victim.admission.dropped_members >= 100_000 - budget(elapsed)
    assert len(victim.members) <= budget(elapsed) + 2
    reports = [e for e in lan.events[victim.me] if isinstance(e, GossipRefused)]
    assert len(reports) == 1 and reports[0].peer == ATTACKER, "one log line, not 99,500"


def test_the_member_list_stays_at_capacity_and_a_flood_evicts_its_own_records() -> None:
    # A smaller list and a faster rate fill up sooner; the rules are the same.
    config = replace(CONFIG, capacity=2_000, new_member_rate=100)
    contact = Identity(b"\x0c" * 32)
    lan = Lan(2, config=config, protected=lambda peer: peer == contact.public_key)
    lan.join()
    victim, neighbour = lan.meshes
    honest = list(fake_records(random.Random(3), 50, nick="honest-hearsay"))
    told = (*honest, make_record(contact, version=1, nick="carol"))
    victim.receive(neighbour.me, MeshGossip(records=told), lan.now)
    lan.deliver()
    lan.attack(victim, 100_000, seconds=60)
    lan.run(30)  # the neighbour, full of fakes too, repairs what the victim evicted
    assert len(victim.members) == config.capacity, "full, and never over"
    for record in told:
        assert victim.members.get(record.owner) is not None, "hearsay from others stays"
    assert victim.members.get(neighbour.me) is not None
    assert lan.fakes(victim) == config.capacity - len(told) - 2
    forgotten = [e for e in lan.events[victim.me] if isinstance(e, MemberForgotten)]
    assert len(forgotten) > config.capacity, "the flood kept displacing its own"
    assert all(e.record.nick.startswith(FAKE) for e in forgotten)
    assert len(neighbour.members) == config.capacity


@pytest.mark.slow
def test_memory_grows_at_most_64_mib_under_100000_fakes() -> None:
    # Faster rates than the defaults, so the list fills within the test: the memory
    # is that of a full list (10,000 members), whatever the rate.
    config = replace(CONFIG, new_member_rate=500, new_member_global_rate=500)
    lan = Lan(1, config=config)
    victim = lan.meshes[0]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        lan.attack(victim, 100_000, seconds=40)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(victim.members) == CONFIG.capacity
    assert victim.admission.dropped_members > 0
    assert grown <= 64 * MiB, f"{grown / MiB:.1f} MiB"


def test_what_was_dropped_is_never_forwarded() -> None:
    lan = Lan(2)
    lan.join()
    victim, neighbour = lan.meshes
    victim.receive(ATTACKER, MeshNeighbor(urgent=True), lan.now)
    fakes = list(fake_records(random.Random(5), 1_000))
    for start in range(0, len(fakes), 256):
        victim.receive(ATTACKER, MeshGossip(records=tuple(fakes[start : start + 256])), lan.now)
    sent = victim.take_outgoing()
    pushed = {r.owner for r in gossip_records(sent)}
    held = {m.peer for m in victim.members if m.record.nick.startswith(FAKE)}
    assert len(held) == CONFIG.new_member_burst, "same instant: the burst, nothing more"
    assert pushed == held
    for peer, message in sent:
        if peer != ATTACKER:
            neighbour.receive(victim.me, message, lan.now)
    lan.run(30)  # anti-entropy rounds: the repairs carry only what the victim holds
    at_neighbour = {m.peer for m in neighbour.members if m.record.nick.startswith(FAKE)}
    assert at_neighbour <= {m.peer for m in victim.members}


def test_a_stranger_that_is_no_neighbour_has_the_same_budget() -> None:
    lan = Lan(3)
    lan.join()
    victim = lan.meshes[0]
    assert ATTACKER not in victim.active  # it never asked
    fakes = list(fake_records(random.Random(6), 512))
    victim.receive(ATTACKER, MeshGossip(records=tuple(fakes[:256])), lan.now)
    victim.receive(ATTACKER, MeshGossip(records=tuple(fakes[256:])), lan.now)
    pushed = {r.owner for r in gossip_records(victim.take_outgoing())}
    held = {m.peer for m in victim.members if m.record.nick.startswith(FAKE)}
    assert len(held) == CONFIG.new_member_burst and pushed == held
    # Repairs are stored but never pushed on, whoever sends them.
    more = tuple(fake_records(random.Random(7), 5))
    victim.receive(lan.meshes[1].me, MeshGossip(records=more, repair=True), lan.now)
    assert all(victim.members.get(r.owner) for r in more)
    assert not gossip_records(victim.take_outgoing())


def test_forged_records_use_up_the_senders_budget_not_our_cpu() -> None:
    checked = 0

    def verify(record: PresenceRecord) -> bool:
        nonlocal checked
        checked += 1
        return not record.nick.startswith(FAKE)

    identity = Identity(b"\x01" * 32)
    mesh = Mesh(identity, make_record(identity, version=1, nick="me"), now=0, rng=random.Random(1),
                verify=verify)  # fmt: skip
    checked = 0  # our own record was checked once
    for start in range(0, 2_560, 256):
        batch = tuple(fake_records(random.Random(start), 256))
        mesh.receive(ATTACKER, MeshGossip(records=batch), 0)
    assert checked == CONFIG.new_member_burst
    assert len(mesh.members) == 1


def test_the_sender_itself_proven_peers_and_contacts_pass_when_the_budget_is_spent() -> None:
    contact = Identity(b"\x0c" * 32)
    proven, attacker = Identity(b"\x0d" * 32), Identity(ATTACKER)
    identity = Identity(b"\x01" * 32)
    mesh = Mesh(identity, make_record(identity, version=1, nick="me"), now=0, rng=random.Random(1),
                verify=trusting, protected=lambda peer: peer == contact.public_key)  # fmt: skip
    mesh.mark_proven(proven.public_key)  # say, mDNS and a handshake found it
    spend = tuple(fake_records(random.Random(1), 512))
    mesh.receive(attacker.public_key, MeshGossip(records=spend[:256]), 0)
    mesh.receive(attacker.public_key, MeshGossip(records=spend[256:]), 0)
    assert mesh.admission.room_for_members(attacker.public_key, 0) == 0
    late = (
        make_record(contact, version=1, nick="carol"),
        make_record(proven, version=1, nick="dave"),
        make_record(attacker, version=1, nick="mallory"),
        *fake_records(random.Random(2), 3),
    )
    mesh.receive(attacker.public_key, MeshGossip(records=late), 0)
    for record in late[:3]:
        assert mesh.members.get(record.owner) is not None
    assert all(mesh.members.get(r.owner) is None for r in late[3:])
    held = mesh.members.get(proven.public_key)
    assert held is not None and held.proven


def test_many_strangers_share_one_global_budget() -> None:
    identity = Identity(b"\x01" * 32)
    mesh = Mesh(identity, make_record(identity, version=1, nick="me"), now=0, rng=random.Random(1),
                verify=trusting)  # fmt: skip
    for index in range(10):
        sender = bytes([index + 1]) * 32
        batch = tuple(fake_records(random.Random(index), 256))
        mesh.receive(sender, MeshGossip(records=batch), 0)
    assert len(mesh.members) - 1 == CONFIG.new_member_global_burst


def test_full_digests_are_answered_at_a_limited_rate() -> None:
    identity = Identity(b"\x01" * 32)
    mesh = Mesh(identity, make_record(identity, version=1, nick="me"), now=0, rng=random.Random(1))

    def answers() -> int:
        full = [m for _, m in mesh.take_outgoing() if isinstance(m, MeshDigest) and m.full]
        return len(full)

    burst = int(CONFIG.digest_answer_burst)
    for _ in range(50):
        mesh.receive(ATTACKER, MeshDigest(bytes(16)), 0)
    assert answers() == burst
    for _ in range(50):
        mesh.receive(ATTACKER, MeshDigest(bytes(16)), 10)
    assert answers() <= min(burst, CONFIG.digest_answer_rate * 10)
    mesh.receive(ATTACKER, MeshDigest(mesh.members.summary()), 10)
    assert answers() == 0, "an equal summary needs no answer"
    reports = [e for e in mesh.take_events() if isinstance(e, GossipRefused)]
    assert len(reports) == 1 and reports[0].digests == 1, "the first refusal, at once"
    for _ in range(10):
        mesh.receive(ATTACKER, MeshDigest(bytes(16)), 10 + CONFIG.log_interval)
    answered = answers()
    reports = [e for e in mesh.take_events() if isinstance(e, GossipRefused)]
    assert mesh.admission.dropped_digests == 2 * 50 + 10 - 2 * burst - answered
    # A minute on, the next refusal writes a line counting all since the first line.
    assert len(reports) == 1 and reports[0].digests == 2 * (50 - burst)


def test_a_repair_asks_only_for_what_it_will_admit_and_offers_at_most_256_unknown() -> None:
    identity = Identity(b"\x01" * 32)
    mesh = Mesh(identity, make_record(identity, version=1, nick="me"), now=0, rng=random.Random(1),
                verify=trusting)  # fmt: skip
    proven_peer = Identity(b"\x0d" * 32)
    mesh.mark_proven(proven_peer.public_key)
    neighbour = b"\x0e" * 32
    held = tuple(fake_records(random.Random(1), 290, nick="known"))
    mesh.receive(neighbour, MeshGossip(records=held[:256]), 0)
    rest = (*held[256:], make_record(proven_peer, version=1, nick="dave"))
    mesh.receive(neighbour, MeshGossip(records=rest), 0)
    mesh.take_outgoing()
    offered = [DigestEntry(r.owner, 1) for r in fake_records(random.Random(2), 2_000)]
    mesh.receive(ATTACKER, MeshDigest(bytes(16), tuple(offered), full=True, want_reply=True), 0)
    sent = mesh.take_outgoing()
    wants = [m for _, m in sent if isinstance(m, MeshDigest)]
    # As many as the peer may introduce, and we may learn at once (§12.6).
    room = min(CONFIG.new_member_burst, CONFIG.learn_burst)
    assert len(wants) == 1 and len(wants[0].entries) == room
    unasked = gossip_records(sent)
    assert len(unasked) == CONFIG.repair_new_max
    first_two = {r.owner for r in unasked[:2]}
    assert first_two == {identity.public_key, proven_peer.public_key}, "proven first"


def test_refusals_are_reported_once_per_peer_per_interval() -> None:
    lan = Lan(1)
    victim = lan.meshes[0]
    start = lan.now
    lan.attack(victim, 30_000, seconds=150)
    elapsed = lan.now - start
    reports = [e for e in lan.events[victim.me] if isinstance(e, GossipRefused)]
    assert 2 <= len(reports) <= 1 + elapsed // CONFIG.log_interval
    assert sum(r.members for r in reports) <= victim.admission.dropped_members


# ---------------------------------------------------------------- the eviction order


def test_the_eviction_order_is_hearsay_offline_then_the_biggest_introducer_then_proven() -> None:
    order = EvictionOrder()
    x, y = b"x" * 32, b"y" * 32
    order.place(b"p1", Standing.PROVEN, True, x)
    order.place(b"p2", Standing.PROVEN, True, x)
    order.place(b"proven-offline", Standing.PROVEN, False, x)
    order.place(b"from-y", Standing.HEARSAY, True, y)
    for name in (b"x1", b"x2", b"x3"):
        order.place(name, Standing.HEARSAY, True, x)
    order.place(b"hearsay-dead", Standing.HEARSAY, False, y)
    order.place(b"contact", Standing.PROTECTED, True, x)
    order.touch(b"p1")  # proven again: the last proven one to go
    assert order.first(Standing.HEARSAY) == b"hearsay-dead"
    gone = []
    while (victim := order.first(Standing.PROVEN)) is not None:
        gone.append(victim)
        order.remove(victim)
    # x introduced the most: its newest go first; at a tie the larger introducer id.
    assert gone == [b"hearsay-dead", b"x3", b"x2", b"from-y", b"x1", b"proven-offline",
                    b"p2", b"p1"]  # fmt: skip
    assert b"contact" not in order and len(order) == 0


def test_hearsay_cannot_take_a_proven_members_place_in_the_order() -> None:
    order = EvictionOrder()
    order.place(b"p", Standing.PROVEN, True, b"")
    assert order.first(Standing.HEARSAY) is None
    assert order.first(Standing.PROVEN) == b"p"
    order.set_online(b"p", False)
    order.place(b"q", Standing.PROVEN, True, b"")
    assert order.first(Standing.PROVEN) == b"p", "offline goes first"


def _member_list(capacity: int, protected: set[bytes] | None = None) -> Membership:
    own = make_record(Identity(b"\x01" * 32), version=1, nick="me")
    chosen = protected if protected is not None else set()
    return Membership(own, capacity=capacity, verify=trusting, protected=chosen.__contains__)


def test_hearsay_never_displaces_a_proven_member_and_proven_displaces_the_oldest() -> None:
    members = _member_list(3)
    first, second, third = fake_records(random.Random(1), 3)
    for record in (first, second):
        members.mark_proven(record.owner)
        assert members.offer_record(record) is Change.NEW
    assert members.offer_record(third) is Change.NONE
    assert members.refused_full == 1 and len(members) == 3
    members.mark_proven(first.owner)  # seen again: now second is the least recently proven
    members.mark_proven(third.owner)
    assert members.offer_record(third) is Change.NEW
    assert members.get(second.owner) is None and members.get(first.owner) is not None
    assert [r.owner for r in members.take_evicted()] == [second.owner]


def test_a_member_that_became_a_contact_is_never_evicted() -> None:
    contacts: set[bytes] = set()
    members = _member_list(3, contacts)
    first, second, third = fake_records(random.Random(1), 3)
    members.offer_record(first)
    members.offer_record(second)
    contacts.add(first.owner)  # the user added it after we heard of it
    assert members.offer_record(third) is Change.NEW
    assert members.get(first.owner) is not None and members.get(second.owner) is None


def test_dead_hearsay_goes_before_live_hearsay() -> None:
    members = _member_list(3)
    first, second, third = fake_records(random.Random(1), 3)
    members.offer_record(first)
    members.offer_record(second)
    claim = MeshClaim(second.owner, second.version, "dead", b"\x02" * 32)
    assert members.offer_claim(claim, 0) is Change.NEW
    assert members.offer_record(third) is Change.NEW
    assert members.get(second.owner) is None and members.get(first.owner) is not None
    # An evicted member comes back like any new one, with its state from its record,
    # and takes the place of the newest hearsay.
    members.offer_record(replace(second, version=2))
    assert members.get(third.owner) is None and members.get(first.owner) is not None
    back = members.get(second.owner)
    assert back is not None and back.state is State.ALIVE


def test_summaries_and_random_draws_follow_evictions() -> None:
    members = _member_list(4)
    records = list(fake_records(random.Random(1), 10))
    for record in records:
        members.offer_record(record)
    assert len(members) == 4
    kept = {m.peer for m in members} - {members.me}
    # The first two stay; each newcomer took the place of the one before it.
    assert kept == {records[0].owner, records[1].owner, records[9].owner}
    assert set(members.random_peers(random.Random(2), 50)) == kept
    same = Membership(members.own, capacity=4, verify=trusting)
    for index in (9, 1, 0):
        same.offer_record(records[index])
    assert members.summary() == same.summary()


# ---------------------------------------------------------------- joining a big mesh


def test_a_node_joining_a_mesh_larger_than_one_burst_learns_every_member() -> None:
    # Small budgets so a small simulation needs several rounds: each neighbour gives
    # 20 at once and 2 per second, all together 5 per second.
    config = replace(CONFIG, new_member_burst=20, new_member_rate=2,
                     new_member_global_burst=40, new_member_global_rate=5)  # fmt: skip
    report = simulate(SimSettings(nodes=120, seed=8, join=1, seconds=5, config=config))
    assert report.join_s is not None
    # Proven members (its neighbours) need no budget; all others wait for it.
    assert report.join_s >= (120 - 40 - config.active_max) / 5


def test_updates_and_claims_from_one_peer_are_held_to_its_item_budget() -> None:
    """A peer re-signs the members it got admitted (and adds claims about them) as fast
    as it can: only its item budget is stored and pushed on; the rest is dropped."""
    lan = Lan(2)
    lan.join()
    victim = lan.meshes[0]
    victim.receive(ATTACKER, MeshNeighbor(urgent=True), lan.now)
    fakes = list(fake_records(random.Random(9), 200))
    victim.receive(ATTACKER, MeshGossip(records=tuple(fakes)), lan.now)
    victim.take_outgoing()
    updates = 0
    for version in range(2, 30):  # 28 versions of 200 records: 5,600 updates at once
        bumped = tuple(replace(record, version=version) for record in fakes)
        claims = tuple(MeshClaim(r.owner, version, "suspect", ATTACKER) for r in fakes[:50])
        for start in range(0, len(bumped), 100):
            victim.receive(
                ATTACKER,
                MeshGossip(records=bumped[start : start + 100], claims=claims[:10]),
                lan.now,
            )
        updates += len(bumped) + 10 * 2
    pushed = gossip_records(victim.take_outgoing())
    taken = CONFIG.item_burst  # the same instant: the burst, nothing refilled
    print(f"{updates} updates and claims sent; {len(pushed)} pushed on; budget {taken:g}")
    assert victim.admission.dropped_items == updates - taken
    assert len(pushed) <= taken
    refusals = [e for e in victim.take_events() if isinstance(e, GossipRefused)]
    assert len(refusals) == 1 and refusals[0].items > 0, "one log line"


def test_an_exchange_with_a_small_neighbour_leaves_the_learning_budget_for_later() -> None:
    """A cold start: the first bucket exchange is with a seed that holds a dozen
    members; a later one, with most of the mesh. The first may not spend the whole
    learning budget (it once reserved repair_new_max for any exchange), or the later
    one gets only what learn_rate refilled meanwhile."""
    identity = Identity(b"\x01" * 32)
    newcomer = Mesh(identity, make_record(identity, version=1, nick="new"), now=0,
                    rng=random.Random(1), verify=trusting)  # fmt: skip
    seed = b"\x0e" * 32
    newcomer.receive(seed, MeshNeighbor(urgent=True), 0)
    newcomer.take_outgoing()

    def listing_room(held: int, now: float) -> int:
        entries = [(r.owner, 1, False) for r in fake_records(random.Random(held), held)]
        hashes = MeshDigest(bytes(16), held=held, buckets=bucket_hashes(entries))
        newcomer.receive(seed, hashes, now)  # its hashes back: we list and say our room
        [listing] = [m for _, m in newcomer.take_outgoing() if isinstance(m, MeshDigest)]
        return listing.room

    small = listing_room(12, now=1.0)
    assert 12 <= small <= 12 * 1.5 + 8
    large = listing_room(150, now=2.0)
    # The rest of the budget: a second after the first exchange, learn_rate adds ~3.
    assert large >= min(CONFIG.learn_burst - small, 150 * 1.5)
