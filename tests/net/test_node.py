"""Nodes over real loopback TCP and real Noise sessions, many in one process."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import trio
import trio.testing

from p2pchat.discovery.known import Target
from p2pchat.identity import Identity
from p2pchat.mesh.config import MeshConfig
from p2pchat.net.slots import LinkLimits
from p2pchat.node.events import PeerConnected, Presence
from p2pchat.node.node import Node, NodeSettings, crashable_node, open_node

# Every node of these tests is at 127.0.0.1: one address for the per-address share.
LOOPBACK = LinkLimits(max_links_per_address=LinkLimits().max_links)


def settings(index: int, **overrides: object) -> NodeSettings:
    values: dict[str, object] = {
        "nick": f"node{index}",
        "host": "127.0.0.1",
        "mdns": False,
        "seed": index,
        "limits": LOOPBACK,
    }
    values.update(overrides)
    return NodeSettings(**values)  # type: ignore[arg-type]


# Many nodes in one process: on a busy machine its event loop lags by more than the
# failure detector's 0.2 s probe timeout, so live nodes are declared dead, and the
# mesh flaps instead of converging (30 nodes under two CPU hogs: 48 s to converge,
# with live members lost and found on the way). Probe and suspicion timeouts five
# times as long absorb that lag; the probe and gossip intervals stay as they are.
# The tests that run them also run on trio's MockClock (autojump): time passes only
# while every task waits, so the lag of a busy machine cannot expire a timer at all,
# and no test waits out a timer in real time.
SHARED_PROCESS = MeshConfig(probe_timeout=1.0, probe_round_timeout=2.25, suspicion_alpha=5.0)


async def run_crashable(
    index: int, *, task_status: trio.TaskStatus[tuple[Node, trio.CancelScope]]
) -> None:
    with trio.CancelScope() as scope:
        node_settings = settings(index, mesh=SHARED_PROCESS)
        async with crashable_node(Identity.generate(), node_settings) as (node, _):
            task_status.started((node, scope))
            await trio.sleep_forever()


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = trio.current_time()
    with trio.move_on_after(timeout):
        while not check():
            await trio.sleep(0.05)
        return trio.current_time() - start
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def sees(observer: Node, subject: Node, status: str) -> bool:
    presence = observer.presence_of(subject.peer_id)
    return presence is not None and presence.status == status


# Minutes on a busy machine: more than the default timeout allows.
@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_thirty_nodes_converge_detect_crashes_and_spread_a_status_change(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Thirty real nodes in one process, on the mock clock: every wait here is a generous
    guard in virtual time, and each claim is shown by its mechanism, not by a time
    (how fast the mesh converges and detects is the simulator's test and bench/mesh.py's
    figure)."""
    count = 30
    async with trio.open_nursery() as nursery:
        started = [await nursery.start(run_crashable, i) for i in range(count)]
        nodes = [node for node, _ in started]
        first = nodes[0]
        for node in nodes[1:]:
            node.introduce(first.peer_id, first.addresses[0])

        def all_online(live: list[Node]) -> bool:
            return all(
                all(sees(observer, subject, "avail") for subject in live) for observer in live
            )

        await wait_until(lambda: all_online(nodes), 90, "every node to see every other online")
        target = MeshConfig().active_target(count) + MeshConfig().active_slack
        for node in nodes:
            assert 1 <= len(node.neighbours()) <= target < count - 1, "a partial view"

        victims, survivors = started[-5:], nodes[:-5]
        for _, scope in victims:
            scope.cancel()
        dead = [node for node, _ in victims]
        await wait_until(
            lambda: all(all(sees(o, v, "offline") for v in dead) for o in survivors),
            60,
            "the five killed nodes to be marked offline everywhere",
        )
        for observer in survivors:
            presence = observer.presence_of(dead[0].peer_id)
            assert presence is not None and presence.state == "dead"  # detected, not left

        # The change must spread by push: the periodic repairs that would also carry it,
        # given time, are switched off.
        for node in survivors:
            assert node.mesh is not None
            node.mesh.periodic_repair = False
        speaker = survivors[7]
        await speaker.set_presence(status="dnd", status_text="do not disturb")

        def heard(observer: Node) -> bool:
            presence = observer.presence_of(speaker.peer_id)
            return presence is not None and presence.status_text == "do not disturb"

        await wait_until(lambda: all(heard(o) for o in survivors), 60, "the change")
        assert all(o.presence_of(speaker.peer_id).status == "dnd" for o in survivors)
        nursery.cancel_scope.cancel()


async def test_a_graceful_leave_is_seen_at_once_and_events_flow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        stay_a, _ = await nursery.start(run_crashable, 1)
        stay_b, _ = await nursery.start(run_crashable, 2)
        stay_b.introduce(stay_a.peer_id, stay_a.addresses[0])
        leave = trio.Event()
        left = trio.Event()
        events: list[object] = []

        async def leaver(*, task_status: trio.TaskStatus[Node]) -> None:
            static = [Target("127.0.0.1", int(stay_a.addresses[0].rsplit(":", 1)[1]))]
            async with open_node(Identity.generate(), settings(3, static=static)) as node:
                task_status.started(node)
                await leave.wait()
            left.set()

        node = await nursery.start(leaver)

        async def collect() -> None:
            async for event in node.events:
                events.append(event)

        nursery.start_soon(collect)
        await wait_until(
            lambda: sees(stay_a, node, "avail") and sees(stay_b, node, "avail"), 60, "join"
        )
        assert any(isinstance(e, PeerConnected) for e in events)
        own = [e for e in events if isinstance(e, Presence) and e.is_self]
        assert own and own[0].nick == "node3"
        leave.set()
        await left.wait()
        await wait_until(
            lambda: sees(stay_a, node, "offline") and sees(stay_b, node, "offline"), 60, "leave"
        )
        # "left", not "dead": the leave was announced, not detected.
        assert stay_a.presence_of(node.peer_id).state == "left"
        assert stay_b.presence_of(node.peer_id).state == "left"
        nursery.cancel_scope.cancel()


async def test_simultaneous_dials_keep_one_session(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        a, _ = await nursery.start(run_crashable, 1)
        b, _ = await nursery.start(run_crashable, 2)
        # Both introduce each other at the same moment: both dial.
        a.introduce(b.peer_id, b.addresses[0])
        b.introduce(a.peer_id, a.addresses[0])
        await wait_until(lambda: sees(a, b, "avail") and sees(b, a, "avail"), 60, "the pair")
        # If both dials landed, one session is closed on both sides: wait for that.
        await wait_until(
            lambda: a.connected() == [b.peer_id] and b.connected() == [a.peer_id],
            60,
            "one session each",
        )
        link_a = a.links.links[b.identity.public_key]
        link_b = b.links.links[a.identity.public_key]
        # Both sides kept the same session (if both dials landed, the smaller id's).
        assert link_a.connection.handshake_hash == link_b.connection.handshake_hash
        assert link_a.dialled_by == link_b.dialled_by
        nursery.cancel_scope.cancel()


def test_active_view_target_is_logarithmic() -> None:
    config = MeshConfig()
    assert config.active_target(30) == math.ceil(math.log2(30)) + 1


async def test_an_idle_node_sleeps_until_its_next_timer() -> None:
    async with crashable_node(Identity.generate(), settings(1)) as (node, _):
        mesh = node.mesh
        assert mesh is not None
        ticks = 0
        tick = mesh.tick

        def counting_tick(now: float) -> None:
            nonlocal ticks
            ticks += 1
            tick(now)

        mesh.tick = counting_tick  # type: ignore[method-assign]
        await trio.sleep(1.0)
        # Timers fire a few times a second; a runner that wakes itself would tick
        # thousands of times (and burn a core).
        assert ticks < 20
