"""The room scenario (p2pchat only): one room of M members made through the API, then
messages of a 300-byte payload from random members: three to warm up (they open the
members' sessions with each other; their cost is reported apart), then those counted.

Only API commands are used (room_create, add_contact, room_invite, room_join,
room_send), so the scenario runs unchanged whatever overlay the rooms form. Figures:
the time until every online member stored a message (from the author's own
``room_message``, to each member's; median and p95 over messages), the delivery at 5 %
loss, and the bytes on the wire per member per message: every frame the switch received
during the message phase (Ethernet headers and TCP ACKs included; the whole mesh's
background too, so the idle rate measured in the same run is also subtracted) divided
by members x messages, as a multiple of the payload.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any, Protocol

import trio

from bench.testbed import traffic
from bench.testbed.p2pchat_agents import Daemon, P2pchatAgents
from bench.testbed.procstat import cpu_seconds_of
from bench.testbed.stats import median_p95, percentile
from bench.testbed.views import delays, wait_until

PAYLOAD = 300
WARMUP = 3  # messages before those counted


class LossyLab(traffic.CountingLab, Protocol):
    async def set_link(self, *, loss: float | None = None) -> None: ...


def room_sizes(nodes: int) -> list[int]:
    """20 members, and as many as the lab has (at most 200) if that is more."""
    return sorted({min(20, nodes), min(200, nodes)})


async def make_room(agents: P2pchatAgents, members: Sequence[int], name: str) -> str:
    daemons = [agents.daemons[i] for i in members]
    creator, others = daemons[0], daemons[1:]
    size = len(daemons)
    _, answer = await creator.command("room_create", name=name)
    room: str = answer["room"]["id"]
    assert creator.id is not None
    tags = [(d, d.send("add_contact", id=creator.id)) for d in others]
    tags += [(creator, creator.send("add_contact", id=d.id)) for d in others]
    await _answered(tags, timeout=120)
    # One change for all of them (one epoch, one key update per member): one by one,
    # a room of M costs M epochs and ~M²/2 pairwise updates.
    await creator.command("room_invite", timeout=120, room=room, ids=[d.id for d in others])
    if not await wait_until(lambda: all(room in d.invitations for d in others), 60 + size):
        missing = [d.index for d in others if room not in d.invitations]
        named = ", ".join(f"h{index}" for index in missing[:10])
        raise TimeoutError(f"room {name}: {len(missing)} invitations missing ({named} …)")
    tags = [(member, member.send("room_join", room=room)) for member in others]
    await _answered(tags, timeout=120)
    if not await wait_until(
        lambda: all(len(d.rooms.get(room, ())) == size for d in daemons), 60 + size
    ):
        seen = sorted(len(d.rooms.get(room, ())) for d in daemons)
        complete = sum(1 for count in seen if count == size)
        raise TimeoutError(
            f"room {name}: not every member sees {size} members ({complete} do; the "
            f"others see {seen[0]} to {seen[-1]})"
        )
    return room


def sessions_opened(
    agents: P2pchatAgents, members: Sequence[int], since: float, until: float
) -> int:
    """Sessions that came up among ``members`` from ``since`` to ``until`` (each one is
    reported by both of its ends, with one outside the members counted as half)."""
    ends = sum(1 for i in members for at in agents.daemons[i].sessions_up if since <= at < until)
    return (ends + 1) // 2


def _sent(first: traffic.Snapshot, last: traffic.Snapshot, hosts: Sequence[int]) -> int:
    return sum(last.counters[i].rx_bytes - first.counters[i].rx_bytes for i in hosts)


async def _answered(tags: list[tuple[Daemon, int]], timeout: float) -> None:
    if not await wait_until(lambda: all(tag in d.answers for d, tag in tags), timeout):
        raise TimeoutError("commands were not answered")
    for daemon, tag in tags:
        _, answer = daemon.answers.pop(tag)
        if answer.get("event") == "error":
            raise RuntimeError(f"h{daemon.index}: {answer.get('error')}")


async def messages(
    agents: P2pchatAgents,
    room: str,
    members: Sequence[int],
    count: int,
    rng: random.Random,
    *,
    timeout: float,
) -> dict[str, Any]:
    """``count`` messages one after another, each waited for by every other member."""
    everyone: list[float] = []
    typical: list[float] = []
    cpu: list[float] = []
    pids = agents.pids()
    expected = received = 0
    for _ in range(count):
        cpu_before = cpu_seconds_of(pids, members)
        author = agents.daemons[rng.choice(list(members))]
        text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(PAYLOAD))
        answered, answer = await author.command("room_send", room=room, text=text)
        msg_id = answer["msg_id"]
        start = min(answered, author.room_messages.get(msg_id, answered))
        readers = [agents.daemons[i] for i in members if i != author.index]

        def times() -> list[float | None]:
            return [d.room_messages.get(msg_id) for d in readers]  # noqa: B023

        await wait_until(lambda: None not in times(), timeout)
        cpu.append(cpu_seconds_of(pids, members) - cpu_before)
        waited = delays(times(), start)
        expected += len(waited)
        received += sum(1 for t in waited if t != float("inf"))
        everyone.append(percentile(waited, 1.0))
        typical.append(percentile(waited, 0.5))
    return {
        "messages": count,
        "delivered_pct": 100 * received / max(expected, 1),
        "all_members_s": median_p95(everyone),
        "median_member_s": median_p95(typical),
        # The CPU the members spent together from the send until all had it (their
        # idle work included): on few shared cores, delivery to all cannot be faster
        # than this divided by the cores.
        "cpu_s_all_members_per_message": median_p95(cpu),
    }


async def scenario(
    lab: LossyLab,
    agents: P2pchatAgents,
    alive: Sequence[int],
    *,
    messages_each: int,
    idle_out_bytes_per_s: float,
    base_loss: float,
    seed: int,
    phases: list[tuple[str, float, float]],
) -> dict[str, Any]:
    rng = random.Random(seed)
    results: dict[str, Any] = {}
    for size in room_sizes(len(alive)):
        members = list(alive[:size])
        began = time.time()
        try:
            room = await make_room(agents, members, f"bench{size}")
        except TimeoutError as failure:
            # A room that does not form is a finding: the other sizes are still measured.
            results[str(size)] = {"members": size, "failed": str(failure),
                                  "failed_after_s": round(time.time() - began, 1)}  # fmt: skip
            phases.append((f"room {size}: made (failed)", began, time.time()))
            continue
        made = time.time() - began
        await trio.sleep(2)  # the joins' own traffic is over
        made_until = time.time()
        phases.append((f"room {size}: made", began, made_until))
        # The first messages open the members' sessions with each other: counted apart.
        warm_from = await traffic.snapshot(lab)
        warmup = await messages(agents, room, members, WARMUP, rng, timeout=15)
        await trio.sleep(2)
        first = await traffic.snapshot(lab)
        phases.append((f"room {size}: warm-up", warm_from.at, first.at))
        warm_sent = _sent(warm_from, first, alive) - idle_out_bytes_per_s * len(alive) * (
            first.at - warm_from.at
        )
        clean = await messages(agents, room, members, messages_each, rng, timeout=15)
        await trio.sleep(2)  # lazy announcements and ACKs that follow the last message
        last = await traffic.snapshot(lab)
        phases.append((f"room {size}: messages", first.at, last.at))
        seconds = last.at - first.at
        sent = _sent(first, last, alive)
        frames = sum(last.counters[i].rx_frames - first.counters[i].rx_frames for i in alive)
        background = idle_out_bytes_per_s * len(alive) * seconds
        per = size * messages_each
        await lab.set_link(loss=0.05)
        lossy_from = time.time()
        lossy = await messages(agents, room, members, messages_each, rng, timeout=20)
        await lab.set_link(loss=base_loss)
        phases.append((f"room {size}: messages at 5% loss", lossy_from, time.time()))
        results[str(size)] = {
            "members": size,
            "made_in_s": round(made, 1),
            # Sessions opened per member while the room formed and in its warm-up.
            "sessions_per_member_made": sessions_opened(agents, members, began, made_until) / size,
            "sessions_per_member_warmup": sessions_opened(agents, members, warm_from.at, first.at)
            / size,
            **clean,
            "warmup": {
                **warmup,
                "payload_multiple_net_of_idle": warm_sent / (size * WARMUP) / PAYLOAD,
            },
            "bytes_per_member_per_message": sent / per,
            "frames_per_member_per_message": frames / per,
            "payload_multiple": sent / per / PAYLOAD,
            "payload_multiple_net_of_idle": (sent - background) / per / PAYLOAD,
            "at_5pct_loss": lossy,
        }
    return results
