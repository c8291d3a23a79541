"""Draw docs/screenshot.svg: the real chat window, with a fixed conversation.

What it does, so the picture stays honest: a throw-away profile ("alice", a fixed key)
and message store are filled with fixed contacts, a contact request and messages over
two days; the real ``ChatApp`` starts its real node on 127.0.0.1 (no mDNS) and draws
them at 120x36. The only thing faked is who is around: there are no other machines,
so the presence updates a node would receive for bob, carol and erin are handed to
the app as node events, as the node would hand them over.

Run:  python bench/screenshot.py [--out docs/screenshot.svg]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from p2pchat.identity import Identity, encode_peer_id
from p2pchat.node.events import Presence
from p2pchat.node.node import NodeSettings
from p2pchat.profile import Profile
from p2pchat.store import Store, open_store
from p2pchat.ui.app import ChatApp
from p2pchat.ui.messages import NodeEventArrived
from p2pchat.ui.widgets.composer import Composer
from p2pchat.wire.messages import Status

ROOT = Path(__file__).resolve().parent.parent
SIZE = (120, 36)
FAR_FUTURE_MS = 10**13  # no resend of the fixed outgoing messages while the picture is taken


def key(name: str) -> bytes:
    """A fixed public key per person, so the picture is the same on every run."""
    return Identity(hashlib.sha256(f"p2pchat screenshot {name}".encode()).digest()).public_key


def at(day: int, hour: int, minute: int) -> int:
    """Milliseconds for a local time on 23 or 24 November 2026 (shown as written)."""
    return int(datetime(2026, 11, day, hour, minute).timestamp() * 1000)


# (day, hour, minute, from bob?, text, state of our own messages)
CONVERSATION: list[tuple[int, int, int, bool, str, str]] = [
    (23, 16, 40, True, "did the new build fix the printer queue?", ""),
    (23, 16, 44, False, "yes, it prints again. I left a note on the door", "read"),
    (23, 16, 45, True, "great, thanks!", ""),
    (24, 10, 2, True, "are you at the meeting?", ""),
    (24, 10, 3, False, "on my way", "read"),
    (24, 10, 4, True, "ok, room 3. can you bring the slides from last week?", ""),
    (
        24,
        10,
        5,
        False,
        "here is the link to the folder, slides 4 to 9 are the new ones. "
        "the figures on slide 7 are from yesterday's run",
        "delivered",
    ),
    (24, 10, 6, False, "see you there", "sent"),
]


def fill(store: Store, me: bytes) -> None:
    bob, carol, dave, frank = key("bob"), key("carol"), key("dave"), key("frank")
    store.add_contact(bob, nick="bob", now=at(20, 9, 0))
    store.set_verified(bob, True)
    store.add_contact(carol, nick="carol", now=at(20, 9, 0))
    store.add_contact(dave, nick="dave", now=at(20, 9, 0))
    store.add_request(frank, nick="frank", address="192.0.2.44:7483", now=at(24, 9, 58))
    for clock, (day, hour, minute, theirs, text, state) in enumerate(CONVERSATION, 1):
        msg_id = hashlib.sha256(f"bob {clock}".encode()).digest()[:16]
        when = at(day, hour, minute)
        if theirs:
            store.add_incoming(
                msg_id=msg_id, peer=bob, clock=clock, sent_at=when, received_at=when, text=text
            )
            store.advance([msg_id], "read", at=when)
        else:
            store.add_outgoing(
                msg_id=msg_id,
                peer=bob,
                sender=me,
                clock=clock,
                sent_at=when,
                text=text,
                next_attempt_at=FAR_FUTURE_MS,
                sent=True,
            )
            if state != "sent":
                store.advance([msg_id], state, at=when)
    for clock, text in enumerate(["lunch at 12?", "the usual place, or the new one?"], 1):
        when = at(24, 11, 20 + clock)
        msg_id = hashlib.sha256(f"carol {clock}".encode()).digest()[:16]
        store.add_incoming(
            msg_id=msg_id, peer=carol, clock=clock, sent_at=when, received_at=when, text=text
        )


def presence(name: str, status: str, text: str = "") -> NodeEventArrived:
    return NodeEventArrived(Presence(key(name), name, Status(status), text, "alive", 1))


async def take(out: Path, home: Path) -> None:
    identity = Identity(hashlib.sha256(b"p2pchat screenshot alice").digest())
    profile = Profile(home=home, identity=identity, nick="alice", created=False, config={})
    store = open_store(home / "messages.db")
    try:
        fill(store, identity.public_key)
        settings = NodeSettings(
            nick="alice", host="127.0.0.1", port=0, mdns=False, store=store, seed=1
        )
        app = ChatApp(profile, settings, desktop_notifications=False)
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(200):
                if app.node is not None:
                    break
                await pilot.pause(0.05)
            else:
                raise RuntimeError("the node did not start")
            for event in (
                presence("bob", "avail", "in the lab"),
                presence("carol", "away", "back at 2"),
                presence("erin", "avail"),
            ):
                app.post_message(event)
            await pilot.pause(0.3)  # the sidebar refreshes 0.1 s after a change
            app.open_conversation(encode_peer_id(key("bob")))
            app.query_one(Composer).insert("bringing coffee too")  # typed, not sent
            await pilot.pause(0.3)
            out.write_text(app.export_screenshot(title="p2pchat"), encoding="utf-8")
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.svg")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="p2pchat-screenshot-"))
    try:
        asyncio.run(take(args.out, home))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
