"""Files are the first feature added to a deployed protocol (docs/protocol.md §8.2).
The last release before them, v0.1.0, is installed into a venv of its own
and run as a real daemon beside this code: chat and presence work both ways, this node
never sends a file message to it (it did not list ``files/1``), what it does not know
it skips and stays connected, and the window says "bob's p2pchat cannot receive files
yet" instead of failing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pchat.commands import CommandError, Commands, Target
from p2pchat.identity import decode_peer_id
from p2pchat.node.events import FileEvent, Presence
from p2pchat.node.files import FILE_MESSAGES
from p2pchat.ui.host import NodeHost
from p2pchat.wire.messages import FILES_FEATURE, ONION_FEATURE, FileOffer, OnionAddress
from tests.net.chatpeers import ChatPeer, wait_for
from tests.ui.test_app import (
    SIZE,
    Person,
    line_with,
    notifications,
    online,
    people,
    type_line,
    until,
)

__all__ = ["people"]  # the fixture, used by name

# v0.1.0's source as released, kept in the repository because a clone need not carry
# tags or history: made by
#   git archive --prefix=p2pchat-0.1.0/ c305614 p2pchat pyproject.toml README.md | gzip -9n
OLD_RELEASE = Path(__file__).with_name("p2pchat-0.1.0.tar.gz")
TIMEOUT = 60


@pytest.fixture(scope="module")
def old_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a venv with p2pchat v0.1.0 installed from its source (built and
    installed by pip, as a user would); its dependencies are this venv's, which the
    release accepts (a .pth line), so no download is needed beyond the build backend."""
    where = tmp_path_factory.mktemp("old-release")
    with tarfile.open(OLD_RELEASE) as archive:
        archive.extractall(where, filter="data")
    source = where / "p2pchat-0.1.0"
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "zz-shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(source)],
                   check=True)  # fmt: skip
    shown = subprocess.run([str(python), "-m", "p2pchat", "--version"], cwd=where,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert shown.strip() == "p2pchat 0.1.0", shown
    return python


async def until_event(daemon: OldDaemon, check: Callable[[dict[str, Any]], bool]) -> None:
    with trio.fail_after(TIMEOUT):
        while not any(check(event) for event in list(daemon.events)):
            await trio.sleep(0.02)


async def test_the_old_release_chats_and_is_sent_no_file_messages(
    old_python: Path, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        await chat_and_presence_with_the_old_release(old_python, tmp_path, stack)


async def chat_and_presence_with_the_old_release(
    old_python: Path, tmp_path: Path, stack: ExitStack
) -> None:
    async with trio.open_nursery() as nursery:
        ann = ChatPeer("ann", tmp_path / "ann", downloads=tmp_path / "ann-dl")
        await ann.start(nursery)
        assert ann.node is not None and ann.store is not None
        # Every message ann's node hands to its links for bob, from before they meet.
        to_bob: list[object] = []
        bob_key = b""
        real_send = ann.node.links.send

        def spy(peer: bytes, message: Any, *args: Any, **kwargs: Any) -> bool:
            if peer == bob_key:
                to_bob.append(message)
            return real_send(peer, message, *args, **kwargs)

        ann.node.links.send = spy  # type: ignore[method-assign]
        bob = OldDaemon(old_python, tmp_path / "bob", "bob")
        stack.callback(bob.stop)
        bob_key = decode_peer_id(bob.peer_id)
        commands = Commands(ann.identity, ann.store, ann.node)
        ann.store.add_contact(bob_key, petname="bob", now=0)
        bob.command(cmd="add_contact", id=ann.identity.peer_id, nick="ann")

        # An offer made before they meet waits; once the session shows bob's p2pchat
        # takes no files, it fails saying so (and was never sent).
        photo = tmp_path / "photo.jpg"
        photo.write_bytes(b"\xff\xd8" + bytes(5000))
        waiting = await commands.send_file(bob_key, photo)
        assert waiting.state == "offered"
        ann.node.introduce(bob.peer_id, f"127.0.0.1:{bob.port}")
        await wait_for(lambda: ann.node is not None and ann.node.links.is_connected(bob_key),
                       TIMEOUT, "a session with the old release")  # fmt: skip
        session = ann.node.links.links[bob_key].connection
        assert FILES_FEATURE not in session.features
        assert FILES_FEATURE in ann.node.links.config.session.features  # ours lists it
        await wait_for(lambda: ann.store is not None and
                       ann.store.transfer(waiting.offer_id).state == "failed",  # type: ignore[union-attr]
                       TIMEOUT, "the waiting offer to fail")  # fmt: skip
        assert ann.store.transfer(waiting.offer_id).reason == (  # type: ignore[union-attr]
            "their p2pchat cannot receive files yet"
        )
        # Offered now: refused at once, in words.
        with pytest.raises(CommandError, match="bob's p2pchat cannot receive files yet"):
            await commands.send_file(bob_key, photo)

        # Chat both ways.
        commands.send(bob_key, "hello from the new release")
        hello = "hello from the new release"
        await until_event(bob, lambda e: e["event"] == "message" and e["text"] == hello)
        bob.command(cmd="send", to=ann.identity.peer_id, text="hello from v0.1.0")
        await wait_for(lambda: any(m.text == "hello from v0.1.0" for m in ann.received()),
                       TIMEOUT, "ann reads it")  # fmt: skip

        # Presence both ways.
        bob.command(cmd="set_status", status="away", text="at lunch")
        await wait_for(lambda: any(isinstance(e, Presence) and e.peer == bob_key
                                   and e.status == "away" and e.status_text == "at lunch"
                                   for e in ann.events), TIMEOUT, "bob away")  # fmt: skip
        await commands.set_presence(status="dnd", status_text="deep in code")
        ann_id = ann.identity.peer_id
        await until_event(
            bob,
            lambda e: (
                (e["event"], e.get("id"), e.get("status"), e.get("status_text"))
                == ("presence", ann_id, "dnd", "deep in code")
            ),
        )

        # The service never handed bob a file message.
        assert not [m for m in to_bob if isinstance(m, FILE_MESSAGES)], to_bob
        assert [e.reason for e in ann.events if isinstance(e, FileEvent)
                and e.kind == "failed"] == ["their p2pchat cannot receive files yet"]  # fmt: skip

        # Forced past the service, an offer is a type bob's release does not know: it
        # skips it and the session stays, as the spec says (§5, §8); so is an onion
        # address (§19.2, type 61), which a node sends only where onion/1 is listed.
        assert ONION_FEATURE not in session.features
        real_send(bob_key, FileOffer(offer_id=bytes(16), root=bytes(32), size=1, name="x"))
        real_send(bob_key, OnionAddress("a" * 56 + ".onion:7676"))
        commands.send(bob_key, "still there?")
        await until_event(bob, lambda e: e["event"] == "message" and e["text"] == "still there?")
        bob.command(cmd="send", to=ann.identity.peer_id, text="yes")
        await wait_for(lambda: any(m.text == "yes" for m in ann.received()), TIMEOUT, "yes")
        assert ann.node.links.links[bob_key].connection is session  # the same session
        assert not [e for e in bob.events if e["event"] == "disconnected"]
        assert not [e for e in bob.events if e["event"] == "error"]
        nursery.cancel_scope.cancel()


class OldDaemon:
    """The old release's daemon as a plain process (the window's test runs asyncio, not
    trio), driven by JSON lines."""

    def __init__(self, python: Path, home: Path, name: str) -> None:
        home.mkdir()
        self.process = subprocess.Popen(
            [str(python), "-m", "p2pchat", "--home", str(home), "daemon", "--json",
             "--no-mdns", "--listen", "127.0.0.1:0", "--nick", name],
            cwd=home, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(home / "stderr.log", "wb"),  # noqa: SIM115 (the child's)
            text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            if event["event"] == "listening":
                self.peer_id: str = event["id"]
                self.port = int(event["addresses"][0].rsplit(":", 1)[1])
                break
        else:
            raise AssertionError("the old daemon did not start")
        self.events: list[dict[str, Any]] = []  # every later line (appended by a thread)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self.events.append(json.loads(line))

    def command(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        self.command(cmd="quit")
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def test_the_window_says_the_old_release_cannot_receive_files(
    old_python: Path, people: Callable[[str], Person], tmp_path: Path
) -> None:
    ann = people("ann")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8" + bytes(5000))
    bob = OldDaemon(old_python, tmp_path / "bob", "bob")
    try:
        bob.command(cmd="add_contact", id=ann.peer_id, nick="ann")
        ann.store.add_contact(decode_peer_id(bob.peer_id), petname="bob", now=0)

        async def main() -> None:
            host = NodeHost()
            await host.start()
            try:
                app = ann.app(host, static=[Target("127.0.0.1", bob.port, bob.peer_id)])
                async with app.run_test(size=SIZE, notifications=True) as pilot:
                    await until(pilot, online(app, "bob"), "bob online")
                    app.open_conversation(bob.peer_id)
                    await type_line(pilot, f"/send {photo}")
                    said = "bob's p2pchat cannot receive files yet"
                    await until(pilot, lambda: any(said in m for _, m in notifications(app)),
                                "the window to say so")  # fmt: skip
                    # Chat still works: the window failed nothing else.
                    await type_line(pilot, "no file then, just words")
                    await until(pilot, lambda: line_with(app, "no file then"), "the message")
            finally:
                await host.stop()

        asyncio.run(main())
    finally:
        bob.stop()


def test_the_old_release_refuses_a_locked_profile_and_changes_nothing(
    old_python: Path, tmp_path: Path
) -> None:
    """A profile locked by this version, opened by v0.1.0 (which knows no locks): a
    clear refusal naming the key file, and not a byte of the profile changed (it must
    not, say, make a new identity or a new database beside the encrypted one)."""
    home = tmp_path / "ann"
    env = {**os.environ, "NEW": "correct horse battery staple"}
    locked = subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), "passphrase", "set",
         "--new-passphrase-env", "NEW"], capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert locked.returncode == 0, locked.stderr
    subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), "--passphrase-env", "NEW",
         "contacts", "add", "a" * 52], capture_output=True, env=env, check=True,
    )  # fmt: skip
    before = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    for args in (["id"], ["contacts"], ["daemon", "--json", "--no-mdns", "--listen",
                                         "127.0.0.1:0"]):  # fmt: skip
        old = subprocess.run([str(old_python), "-m", "p2pchat", "--home", str(home), *args],
                             capture_output=True, text=True, cwd=tmp_path, timeout=60)  # fmt: skip
        assert old.returncode != 0, old.stdout
        assert "identity key file" in old.stderr and "left untouched" in old.stderr
        assert "Traceback" not in old.stderr
    after = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    assert {name: data for name, data in after.items() if name != "node.lock"} == {
        name: data for name, data in before.items() if name != "node.lock"
    }
