"""The chat window serves its profile's other programs like the daemon does: with the
window open, one-shot commands (real processes) reach its node over the control socket,
and ``node.json`` says where it listens."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import trio
from textual.pilot import Pilot

from p2pchat.api.control import CONTROL_FILE, call_control
from p2pchat.identity import decode_peer_id, encode_peer_id
from p2pchat.profile import ProfileLock
from p2pchat.ui.app import ChatApp
from p2pchat.wallclock import now_ms
from tests.ui.test_app import Person, line_with, people, sidebar_entry, until, with_app

__all__ = ["people"]  # the fixture, used by name

HISTORY = 10_000  # messages: an answer of several MiB, far over one socket buffer


async def cli(person: Person, *args: str) -> tuple[int, str, str]:
    """Run ``p2pchat --home HOME ARGS`` as a real process without blocking the window's
    loop (the node that must answer runs on it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "p2pchat", "--home", str(person.profile.home), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_cli_commands_reach_the_chat_windows_node(people: Callable[[str], Person]) -> None:
    ann = people("ann")
    bob = os.urandom(32)  # a contact who is away
    ann.store.add_contact(bob, petname="bob", now=now_ms())
    for clock in range(1, HISTORY + 1):
        ann.store.add_incoming(msg_id=os.urandom(16), peer=bob, clock=clock, sent_at=clock,
                               received_at=clock, text=f"message {clock} " + "é" * 40)  # fmt: skip
    home = ann.profile.home

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        assert (home / CONTROL_FILE).exists()
        # node.json follows the node's Listening event, which reaches the window's
        # event pump a moment after the node is up.
        await until(pilot, lambda: (home / "node.json").exists(), "node.json")
        state = json.loads((home / "node.json").read_text())
        assert state["pid"] == os.getpid() and state["port"] == ann.port

        # The window's node answers (not the store beside it), whatever the answer's size.
        command = {"cmd": "history", "with": encode_peer_id(bob), "limit": HISTORY}
        answer = await asyncio.to_thread(trio.run, partial(call_control, home, command))
        assert answer is not None and len(answer["messages"]) == HISTORY

        code, out, err = await cli(ann, "history", "bob", "--json", "--limit", str(HISTORY))
        assert code == 0, err
        rows = json.loads(out)
        assert len(rows) == HISTORY and rows[-1]["text"].startswith(f"message {HISTORY} ")

        # send goes through the window's node (without it: "already running"), and the
        # open conversation shows what was sent.
        app.open_conversation(encode_peer_id(bob))
        await pilot.pause()
        code, out, err = await cli(ann, "send", "bob", "hello there", "--wait", "0", "--json")
        assert code == 3, err  # queued: bob is away
        assert json.loads(out)["to"] == encode_peer_id(bob)
        await until(pilot, lambda: line_with(app, "hello there"), "the message in the window")

        code, out, err = await cli(ann, "invite", "--json", "--interface", "127.0.0.1")
        assert code == 0, err
        assert json.loads(out)["addresses"] == [f"127.0.0.1:{ann.port}"]

        code, out, err = await cli(ann, "doctor", "--json", "--interface", "127.0.0.1")
        checks = {(f["check"], f["ok"]) for f in json.loads(out)["findings"]}
        assert ("listening", True) in checks and ("node", False) not in checks, out

        # The API's quit closes the window, as it stops a daemon.
        answer = await asyncio.to_thread(trio.run, partial(call_control, home, {"cmd": "quit"}))
        assert answer == {"event": "quit"}
        while app.return_code is None:
            await asyncio.sleep(0.05)

    with ProfileLock(home):  # as `p2pchat ui` holds it
        with_app(ann, scenario)
    assert not (home / CONTROL_FILE).exists()  # the window closed: nobody answers there


def test_contacts_beside_the_window_show_who_is_online(
    people: Callable[[str], Person], tmp_path: Path
) -> None:
    """`p2pchat contacts` asks the window's node, which knows who is online (the store
    alone says everybody is offline)."""
    ann = people("ann")
    bob_home = tmp_path / "bob-daemon"
    bob_id = json.loads(run_cli(bob_home, "id", "--json"))["id"]
    run_cli(bob_home, "contacts", "add", ann.peer_id, "--nick", "ann")
    ann.store.add_contact(decode_peer_id(bob_id), petname="bob", now=now_ms())

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        # A program beside the window follows the node's events, as on a daemon.
        path = str(ann.profile.home / CONTROL_FILE)
        await until(pilot, lambda: os.path.exists(path), "the control socket")
        events, subscribe = await asyncio.open_unix_connection(path)
        subscribe.write(b'{"cmd": "subscribe"}\n')
        assert json.loads(await events.readline()) == {"event": "subscribe"}
        bob = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "p2pchat", "--home", str(bob_home), "daemon", "--no-mdns",
            "--listen", "127.0.0.1:0", "--peer", f"127.0.0.1:{ann.port}",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await until(pilot, lambda: (sidebar_entry(app, "bob") or "").startswith("● "), "bob")
            code, out, err = await cli(ann, "contacts", "--json")
            assert code == 0, err
            [row] = json.loads(out)
            assert row["id"] == bob_id and row["status"] == "avail", row
            while (event := json.loads(await events.readline()))["event"] != "connected":
                pass
            assert event["id"] == bob_id
        finally:
            subscribe.close()
            bob.terminate()
            await bob.wait()

    with ProfileLock(ann.profile.home):
        with_app(ann, scenario)


def run_cli(home: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout
