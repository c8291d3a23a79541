"""A file shared with a room of real daemons: how much its author uploads, and how much
the members give each other (docs/protocol.md §16.4).

    python bench/room_files.py [--members 20] [--mib 100] [--write]

Runs ``--members`` real ``p2pchat daemon`` processes on 127.0.0.1 (the first is the
author; every member dials it, and the room's overlay makes the other sessions), forms
a room through the JSON-lines API, and shares a ``--mib`` MiB file of random bytes in
it; every member accepts it as its offer arrives. It prints the bytes each node served
(the ``uploaded`` of ``files``), as multiples of the file: the author's against the
``members - 1`` copies a sender uploads without swarming, and the time until every
member held it all against the time of one 1:1 transfer of the same file between two
of the same daemons in the same run, times ``members - 1`` (a sender with no swarm).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from daemons import Daemon, launch, stop
from files import event, random_file
from perfdoc import write_run


async def form_room(daemons: list[Daemon]) -> str:
    author, members = daemons[0], daemons[1:]
    for member in members:
        await author.call("add_contact", id=member.peer_id, nick=member.name)
        await member.call("add_contact", id=author.peer_id, nick=author.name)
        answer = await member.call("connect", target=author.address)
        assert answer.get("state") == "verified", answer
    room: str = (await author.call("room_create", name="bench"))["room"]["id"]
    await author.call("room_invite", room=room, ids=[m.peer_id for m in members])
    waiting = list(members)
    with trio.fail_after(900):  # 200 daemons on two cores form a room slowly
        while waiting:
            for member in list(waiting):
                joined = await patient_call(member, "room_join", room=room)
                if joined is not None and joined["event"] == "room_join":
                    waiting.remove(member)
            await trio.sleep(0.5)
        everyone = sorted(d.peer_id for d in daemons)
        while True:
            answers = [await patient_call(d, "rooms") for d in daemons]
            if all(a is not None and a["rooms"] and a["rooms"][0]["members"] == everyone
                   for a in answers):  # fmt: skip
                return room
            await trio.sleep(0.5)


async def patient_call(daemon: Daemon, cmd: str, **args: Any) -> dict[str, Any] | None:
    """A command's answer, or None if none came in 30 s: a daemon on a loaded machine
    may drop the oldest lines of its stdout (docs/api.md §1.1), an answer among them."""
    with trio.move_on_after(30):
        return await daemon.call(cmd, **args)
    return None


async def accept_when_offered(member: Daemon, done: list[float]) -> None:
    with trio.fail_after(600):
        while not any(e["event"] == "file_offer" for e in member.file_events):
            await member.changed.wait()
    [offer] = [e for e in member.file_events if e["event"] == "file_offer"]
    await member.call("file_accept", offer=offer["offer"])
    await event(member, "file_done", offer["offer"])
    done.append(time.perf_counter())


async def one_to_one(author: Daemon, member: Daemon, source: Path) -> float:
    """Seconds for a 1:1 offer of the file, from accept to saved."""
    answer = await author.call("send_file", to=member.peer_id, path=str(source))
    offer = answer["file"]["offer"]
    await event(member, "file_offer", offer)
    started = time.perf_counter()
    await member.call("file_accept", offer=offer)
    await event(member, "file_done", offer)
    member.file_events.clear()
    return time.perf_counter() - started


async def run(args: argparse.Namespace, tmp: Path) -> list[str]:
    size = args.mib << 20
    source = tmp / "payload.bin"
    random_file(source, size)
    async with trio.open_nursery() as nursery:
        daemons = [await launch(nursery, tmp / f"n{i}", f"n{i}") for i in range(args.members)]
        try:
            with trio.fail_after(120):
                for daemon in daemons:
                    await daemon.listening.wait()
            room = await form_room(daemons)
            for daemon in daemons:
                daemon.errors.clear()  # (joins refused before the invitation came, asked again)
            author, members = daemons[0], daemons[1:]
            alone = await one_to_one(author, members[0], source)
            for member in members:
                member.file_events.clear()
            done: list[float] = []
            async with trio.open_nursery() as waiting:
                for member in members:
                    waiting.start_soon(accept_when_offered, member, done)
                started = time.perf_counter()
                shared = await author.call("send_file", room=room, path=str(source))
            offer = shared["file"]["offer"]
            served = []
            for daemon in daemons:
                if daemon.process.returncode is not None:
                    raise RuntimeError(f"{daemon.name} exited ({daemon.process.returncode}): see "
                                       f"{tmp / daemon.name / 'stderr.log'}")  # fmt: skip
                [row] = (await daemon.call("files", offer=offer))["files"]
                served.append(row["uploaded"])
        finally:
            for daemon in daemons:
                await stop(daemon)
        nursery.cancel_scope.cancel()
    took = max(done) - started
    others = served[1:]
    naive = (args.members - 1) * alone
    return [
        f"1:1 baseline, the same {args.mib} MiB between two of these daemons: {alone:.2f} s "
        f"({size / alone / 1e6:,.0f} MB/s)",
        f"room of {args.members} ({args.members - 1} members fetch), a {args.mib} MiB file: "
        f"all held it after {took:.1f} s (a sender alone, {args.members - 1} x 1:1: "
        f"{naive:.1f} s; {took / naive:.2f}x)",
        f"  the author uploaded {served[0] / size:.2f}x the file (without swarming: "
        f"{args.members - 1}x; target <= 3x)",
        f"  the members uploaded {sum(others) / size:.2f}x in all: median "
        f"{statistics.median(others) / size:.2f}x, most {max(others) / size:.2f}x, least "
        f"{min(others) / size:.2f}x each",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=20, help="room size, author included")
    parser.add_argument("--mib", type=int, default=100, help="file size (default 100)")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="p2pchat-bench-roomfiles-"))
    started = time.perf_counter()
    lines = trio.run(run, args, tmp)  # (the profiles are kept if it fails)
    shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(lines))
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
    if args.write:
        write_run("room-files", "Files in rooms (`bench/room_files.py`)",
                  "bench/room_files.py", lines)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
