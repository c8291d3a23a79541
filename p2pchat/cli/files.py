"""Files from the command line: ``p2pchat send-file ID|NAME PATH [--wait]`` and
``p2pchat files [list|accept|decline|cancel OFFER]``. Each is an API command (docs/api.md,
"Files"), answered by the profile's running node over the control socket; without one,
``send-file`` starts a node of its own (for as long as ``--wait`` says), and the list is
read from the store."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import trio

from p2pchat.api.control import call_control
from p2pchat.api.handler import ApiHandler
from p2pchat.cli.common import (
    EXIT_ERROR,
    EXIT_USAGE,
    chosen_interfaces,
    fail,
    node_settings,
    open_profile_store,
    print_json,
    read_static_targets,
)
from p2pchat.cli.people import local_call, person
from p2pchat.node.node import NodeSettings, open_node
from p2pchat.profile import Profile, ProfileLock
from p2pchat.sizes import format_size

ENDED = ("done", "declined", "cancelled", "failed")
POLL = 0.5  # seconds between two looks at a transfer while waiting


def cmd_send_file(profile: Profile, args: argparse.Namespace) -> int:
    if not read_static_targets(profile, args):
        return EXIT_USAGE
    path = Path(os.path.expanduser(args.path)).resolve()
    if args.peer.startswith("#"):  # a room: shared with its members
        room = _room_id(profile, args.peer[1:])
        if room is None:
            return EXIT_ERROR
        command = {"cmd": "send_file", "room": room, "path": str(path)}
    else:
        peer = person(profile, args.peer)
        if peer is None:
            return EXIT_ERROR
        command = {"cmd": "send_file", "to": peer, "path": str(path)}
    answer = trio.run(call_control, profile.home, command)
    if answer is None:
        interfaces = chosen_interfaces(args.interface)
        with ProfileLock(profile.home), open_profile_store(profile) as store:
            settings = node_settings(profile, store, args, "0.0.0.0", 0, interfaces)
            answer = trio.run(_offer_with_own_node, profile, settings, command, args.wait)
    elif answer["event"] != "error" and args.wait:
        answer = trio.run(_follow_running_node, profile, answer["file"])
    if answer["event"] == "error":
        return fail(answer)
    transfer = answer["file"]
    if args.json:
        print_json(transfer)
    else:
        print(_outcome(transfer))
    return EXIT_ERROR if transfer["state"] in ("declined", "cancelled", "failed") else 0


def _room_id(profile: Profile, given: str) -> str | None:
    """The id of the joined room called ``given`` (or with that id); None after saying
    why on stderr."""
    answer = local_call(profile, {"cmd": "rooms"})
    if answer["event"] == "error":
        fail(answer)
        return None
    wanted = given.casefold()
    found = [
        r["id"] for r in answer["rooms"] if r["name"].casefold() == wanted or r["id"] == wanted
    ]
    if len(found) == 1:
        return str(found[0])
    how = "no room" if not found else f"{len(found)} rooms"
    print(f"p2pchat: {how} called #{given}; give its id (p2pchat rooms)", file=sys.stderr)
    return None


def _outcome(transfer: dict[str, Any]) -> str:
    state, name = transfer["state"], transfer["name"]
    if transfer.get("room") and state == "offered":
        return (f"shared with the room: {name} ({transfer['offer']}); members fetch it from "
                "each other while a node of this profile runs")  # fmt: skip
    if state == "done":
        return f"sent: {name} ({transfer['size']:,} bytes), every block verified by the receiver"
    if state in ("declined", "cancelled", "failed"):
        why = f": {transfer['reason']}" if transfer["reason"] else ""
        return f"{name} {state}{why}"
    return (f"offered: {name} ({transfer['offer']}); it is sent once they accept, while a "
            "node of this profile runs (p2pchat daemon or the chat window)")  # fmt: skip


async def _offer_with_own_node(
    profile: Profile, settings: NodeSettings, command: dict[str, Any], wait: bool
) -> dict[str, Any]:
    assert settings.store is not None
    async with open_node(profile.identity, settings) as node:
        handler = ApiHandler(profile.identity, settings.store, node)
        answer = await handler.handle(command)
        if answer["event"] == "error":
            return answer
        progress = Progress(sys.stderr)
        offer = answer["file"]["offer"]
        while True:
            [transfer] = (await handler.handle({"cmd": "files", "offer": offer}))["files"]
            progress.show(transfer)
            if transfer["state"] in ENDED or (not wait and transfer["state"] != "offered"):
                break  # without --wait: once the receiver holds the offer
            await trio.sleep(POLL)
        progress.close()
        return {"event": "send_file", "file": transfer}


async def _follow_running_node(profile: Profile, transfer: dict[str, Any]) -> dict[str, Any]:
    progress = Progress(sys.stderr)
    while transfer["state"] not in ENDED:
        await trio.sleep(POLL)
        answer = await call_control(profile.home, {"cmd": "files", "offer": transfer["offer"]})
        if answer is None or answer["event"] == "error":
            progress.close()
            return answer or {"event": "error", "error": "the node stopped"}
        [transfer] = answer["files"]
        progress.show(transfer)
    progress.close()
    return {"event": "send_file", "file": transfer}


class Progress:
    """A progress bar on a terminal (one line, redrawn); elsewhere a plain line every
    few seconds, which a log keeps readable."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._moving: tuple[float, int] | None = None  # when bytes first moved, and how many
        self._shown_at = 0.0
        self._drawn = False

    def show(self, transfer: dict[str, Any]) -> None:
        now = time.monotonic()
        if not self._tty and now - self._shown_at < 5 and transfer["state"] not in ENDED:
            return
        self._shown_at = now
        size, done = transfer["size"], transfer["done_bytes"]
        fraction = done / size if size else 1.0
        if self._moving is None and done:
            self._moving = (now, done)
        start, base = self._moving or (now, done)
        rate = (done - base) / (now - start) if now > start else 0.0
        left = f", {_duration((size - done) / rate)} left" if rate > 0 and done < size else ""
        line = (
            f"{transfer['name']}: {transfer['state']} {fraction:4.0%} {done / 1e6:,.1f} of "
            f"{size / 1e6:,.1f} MB, {rate / 1e6:,.1f} MB/s{left}"
        )
        if self._tty:
            width = 24
            bar = "#" * int(fraction * width) + "." * (width - int(fraction * width))
            self._stream.write(f"\r[{bar}] {line}\x1b[K")
            self._drawn = True
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def cmd_files(profile: Profile, args: argparse.Namespace) -> int:
    action = args.action or "list"
    if action == "list":
        answer = local_call(profile, {"cmd": "files"})
        if answer["event"] == "error":
            return fail(answer)
        if args.json:
            print_json(answer["files"])
        for transfer in [] if args.json else answer["files"]:
            way = "to" if transfer["outgoing"] else "from"
            who = transfer["person"] or f"{transfer['with'][:12]}…"
            print(f"{transfer['offer'][:8]}  {transfer['state']:<9} {way} "
                  f"{who}  {transfer['name']} ({format_size(transfer['size'])})"
                  + (f"  {transfer['path']}" if transfer["path"] and not transfer["outgoing"]
                     else ""))  # fmt: skip
        return 0
    if not args.offer:
        print(f"p2pchat: files {action} needs an offer id (see p2pchat files)", file=sys.stderr)
        return EXIT_USAGE
    offer = _offer_id(profile, args.offer)
    if offer is None:
        return EXIT_ERROR
    command: dict[str, Any] = {"cmd": f"file_{action}", "offer": offer}
    answer = local_call(profile, command)
    if answer["event"] == "error":
        return fail(answer)
    transfer = answer["file"]
    if args.json:
        print_json(transfer)
    else:
        print(f"{transfer['name']}: {transfer['state']}")
    return 0


def _offer_id(profile: Profile, given: str) -> str | None:
    """A whole offer id, or the one offer whose id starts with ``given`` (as listed)."""
    given = given.lower()
    if len(given) == 32:
        return given
    answer = local_call(profile, {"cmd": "files", "limit": 10_000})
    if answer["event"] == "error":
        fail(answer)
        return None
    found = [t["offer"] for t in answer["files"] if t["offer"].startswith(given)]
    if len(found) == 1 and len(given) >= 4:
        return str(found[0])
    how = "no offer" if not found else f"{len(found)} offers" if len(given) >= 4 else "too short"
    print(f"p2pchat: {given!r}: {how}; give more of the id (see p2pchat files)", file=sys.stderr)
    return None
