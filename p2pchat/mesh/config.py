"""The mesh's timers and sizes, with the reasoning for each default (docs/protocol.md §12)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MeshConfig:
    # Each pair of neighbours is probed once per quiet period of probe_interval times
    # the active view's target size (ceil(log2 N) + 1), normally from the same side: a
    # round trip shows both sides alive. A node thus starts about one probe per two
    # intervals, and a crashed member with k neighbours is probed by one of them
    # about quiet / (k + 1) after it stopped, as soon as when every node probed one
    # neighbour per interval in turn. Over TCP a probe one way costs three frames
    # (ping, answer carrying the ACK, ACK; ~300 bytes); a pair probed from both sides
    # in turn paid a fourth, since Linux acks at once data after a quiet spell unless
    # the receiver has been answering. On the testbed (20 hosts) probing one neighbour
    # per 0.75 s in turn cost 533 B/s (5.8 frames/s) per node idle, with a silent host
    # offline everywhere in 2.05 s; a probe per pair and period 304 B/s (3.0 frames/s)
    # and 2.01 s (Serf: 361 B/s, 2.3 packets/s, 6.9 s); docs/performance.md.
    probe_interval: float = 0.75
    # Wait this long for a direct ack before asking helpers (LAN round trips are ~ms).
    probe_timeout: float = 0.2
    # ... or longer, after a neighbour's measured round trips (mean + 4 deviations), up
    # to this: a busy host answers late, and a late answer is not a failure.
    probe_timeout_max: float = 4.0
    # Total budget for a probe round, indirect probes included.
    probe_round_timeout: float = 0.45
    indirect_probes: int = 3
    # What a helper spends on others' indirect probes (§12.2, §12.6). Each requester
    # may have this many relayed; beyond, requests go unanswered (a neighbour asks a
    # helper once per failed probe round). Relaying to a target we hold no session
    # with costs a TCP connection and a Noise handshake: at most relay_dial_rate of
    # those per second in all, beyond which such requests go unanswered too.
    # On 2 cores, 200 daemons starting at once had helpers open ~4,000 such sessions
    # in two minutes while every probe was late, which made probes later still.
    relay_rate: float = 5.0
    relay_burst: float = 15.0
    relay_dial_rate: float = 2.0
    relay_dial_burst: float = 6.0
    # ... and only while our local health score is at most this (0: perfectly healthy).
    relay_dial_health: int = 0
    # Lifeguard: suspicion lasts between min = alpha * max(1, log10 N) * suspicion_unit
    # and beta * min; each independent confirmation shortens it toward min. The unit is
    # not the probe interval: the accuser probes its suspect again as soon as each
    # probe ends, so the suspect has several chances to answer however long the period.
    suspicion_unit: float = 0.5
    suspicion_alpha: float = 1.5
    suspicion_beta: float = 3.0
    suspicion_confirmations: int = 3
    # Lifeguard local health: our own timeouts stretch by (1 + score) while we are slow.
    max_local_health: int = 8
    # Our timers firing later than this after they were due means we were not running:
    # the delay is given back to every pending probe and suspicion (mesh/failure.py).
    late_slack: float = 0.05
    # HyParView-style active view: ceil(log2 N) + active_extra, clamped; accept
    # requests up to active_slack more before refusing.
    active_extra: int = 1
    active_min: int = 3
    active_max: int = 12
    active_slack: int = 2
    passive_size: int = 30
    neighbor_timeout: float = 2.0
    view_interval: float = 1.0
    # Push-pull anti-entropy with one neighbour per interval: a 16-byte summary when
    # in sync, sent just before the next routine probe (the answer acknowledges both).
    anti_entropy_interval: float = 5.0
    # How often to try one member we consider dead: this is how partitions heal.
    reconnect_interval: float = 5.0
    # News travels a tree (Plumtree over the active view, docs/protocol.md §12.3): in
    # full to eager neighbours, by id to lazy ones, batched once per ihave_interval. The
    # announcements are the safety net for a broken tree, so they wait until the tree
    # has almost surely delivered: a flood to all ~8 neighbours cost 100 daemons 0.3 s
    # of CPU per status change on 2 cores, and so 0.18 s before 99% had seen it.
    lazy_push: bool = True
    ihave_interval: float = 0.5
    # A node prunes no link while it has this few eager neighbours or fewer: spare
    # paths in (docs/protocol.md §12.7 has the figures behind the number).
    eager_min: int = 3
    # News announced but still missing this long after the first announcement is
    # grafted from its first announcer, then from the next after graft_retry, up to
    # graft_attempts announcers; after that the digest exchange brings it.
    graft_timeout: float = 0.25
    graft_retry: float = 0.25
    graft_attempts: int = 3
    missing_max: int = 1_024  # announced items being waited for
    lazy_queue_max: int = 1_024  # items waiting to be announced to one neighbour
    # Items one peer may have us send on grafts: a graft of 256 ids (~12 KB) asks for
    # up to 256 records (~100 KB), so a peer grafting over and over is bounded.
    graft_serve_rate: float = 64.0
    graft_serve_burst: float = 512.0
    # --- what a stranger can make us hold (docs/protocol.md §12.6) ---
    # Members held, ourselves included: a full digest lists them all in one message.
    capacity: int = 10_000
    # New identities (members we hold no record of) one peer may introduce: a burst
    # that covers a neighbour's repair when we join a mesh of a few hundred, then a
    # trickle. One stranger pushing fakes gets 300 + 20/s, so at most 500 of them can
    # exist anywhere in the mesh ten seconds later.
    new_member_rate: float = 20.0
    new_member_burst: float = 300.0
    # ...and from all peers together, because identities are free and one attacker
    # can hold many sessions. The burst lets a node joining 1,000 learn them at once.
    new_member_global_rate: float = 100.0
    new_member_global_burst: float = 1_000.0
    # Updates of members we hold, and claims, one peer may pass us: each costs a
    # signature check (records) and a push to every neighbour, so a peer re-signing its
    # records as fast as its link allows would otherwise keep the whole mesh busy.
    # Honest news is rare (a status change, a refutation); a burst covers a repair.
    item_rate: float = 200.0
    item_burst: float = 2_000.0
    # Full digests (each up to ~450 KB for a 16-byte request) answered per peer...
    digest_answer_rate: float = 1.0
    digest_answer_burst: float = 3.0
    # ...and in all; a node starts one exchange per anti_entropy_interval.
    digest_answer_global_rate: float = 10.0
    digest_answer_global_burst: float = 20.0
    # Records of members the other side does not list at all, per unasked repair: the
    # other side asks for more itself, as many as it will admit.
    repair_new_max: int = 256
    # Members we do not hold, taken from digest exchanges at most this fast (we say how
    # many in each exchange, so no more are sent): a node joining a mesh of 1,000 takes
    # 200 at once and then 3 per second, so its first minute costs ~100 KB instead of
    # every record (~1 MB); the rest come within minutes. Pushed news is not limited by
    # this, and proven peers and contacts are always asked for.
    learn_rate: float = 3.0
    learn_burst: float = 200.0
    # Entries one bucketed digest lists at most (~23 KB): the other buckets that differ
    # are compared again in the next exchange.
    bucket_entries_max: int = 512
    tracked_peers: int = 1_024  # rate-limit buckets kept (least recently used first)
    proven_pending: int = 4_096  # proven peers whose record has not arrived yet
    log_interval: float = 60.0  # one log line per refused peer per interval

    def active_target(self, members: int) -> int:
        wanted = math.ceil(math.log2(max(members, 2))) + self.active_extra
        return max(self.active_min, min(self.active_max, wanted))

    def suspicion_bounds(self, members: int) -> tuple[float, float]:
        low = self.suspicion_alpha * max(1.0, math.log10(max(members, 1))) * self.suspicion_unit
        return low, low * self.suspicion_beta

    def suspicion_timeout(self, members: int, confirmations: int) -> float:
        low, high = self.suspicion_bounds(members)
        k = self.suspicion_confirmations
        fraction = math.log(min(confirmations, k) + 1) / math.log(k + 1)
        return max(low, high - (high - low) * fraction)
