"""Contacts-only mode in the window: the status bar says so, /invite hands out a code
with a one-time token, and /connect with it makes its owner a contact on both sides."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual import events
from textual.pilot import Pilot
from textual.widgets import Static

from p2pchat.discovery.known import parse_invite
from p2pchat.node.events import DiscoveryNote
from p2pchat.node.node import NodeSettings
from p2pchat.ui.app import ChatApp
from p2pchat.ui.host import NodeHost
from p2pchat.ui.system_log import Kind
from tests.ui.test_app import SIZE, Person, notifications, people, type_line, until

__all__ = ["people"]  # the fixture, used by name


def app_for(person: Person, host: NodeHost, *, contacts_only: bool) -> ChatApp:
    settings = NodeSettings(
        nick=person.profile.nick,
        host="127.0.0.1",
        port=person.port,
        mdns=False,
        store=person.store,
        contacts_only=contacts_only,
    )
    return ChatApp(person.profile, settings, host=host, desktop_notifications=False)


async def paste_line(pilot: Pilot[None], text: str) -> None:
    """Paste ``text`` into the composer and press enter, as one enters an invite code:
    pressed key by key, its hundred characters cost Pilot seconds."""
    pilot.app.post_message(events.Paste(text))
    await pilot.pause()
    await pilot.press("enter")


def topbar(app: ChatApp) -> str:
    return str(app.query_one("#topbar", Static).content)


def test_the_status_bar_shows_the_mode_and_an_invite_makes_a_contact(
    people: Callable[[str], Person],
) -> None:
    ann, bob, carol = people("ann"), people("bob"), people("carol")

    async def scenario() -> None:
        host = NodeHost()
        await host.start()
        try:
            ann_app = app_for(ann, host, contacts_only=True)
            bob_app = app_for(bob, host, contacts_only=False)
            carol_app = app_for(carol, host, contacts_only=False)
            async with (
                ann_app.run_test(size=SIZE, notifications=True) as ann_pilot,
                bob_app.run_test(size=SIZE, notifications=True) as bob_pilot,
                carol_app.run_test(size=SIZE, notifications=True) as carol_pilot,
            ):
                await until(ann_pilot, lambda: ann_app.node and bob_app.node, "both nodes")
                assert "ann (● available) · contacts only" in topbar(ann_app)
                assert "contacts only" not in topbar(bob_app)

                await type_line(ann_pilot, "/invite")
                # The code is a line of the system conversation (not a toast).
                code = next(line.text for line in ann_app.system.log.lines
                            if line.kind is Kind.CODE)  # fmt: skip
                [target] = parse_invite(code)
                assert target.peer_id == ann.peer_id and len(target.invite) == 16
                assert ann.store.count_invites(now=0) == 1

                await paste_line(bob_pilot, f"/connect {code}")
                await until(
                    bob_pilot,
                    lambda: any("ann is now a contact" in m for _, m in notifications(bob_app)),
                    "bob's confirmation",
                )
                # The proof is one line of bob's system conversation, not two (the
                # node's note and the toast's copy).
                proofs = [line.text for line in bob_app.system.log.lines
                          if line.text.startswith("proven: ann")]  # fmt: skip
                assert len(proofs) == 1, proofs
                # ann's private record, seen later on mDNS, names nobody: bob's window
                # gives it the name he knows her by.
                node = bob_app.node
                assert node is not None
                text = f"discovered: (no nick) ({ann.peer_id[:12]}…) at 198.18.0.9:7483"
                found = DiscoveryNote("discovered", text, {"id": ann.peer_id})
                host.call(lambda: node._emit(found))
                await until(bob_pilot, lambda: any(line.text == text.replace("(no nick)", "ann")
                                                   for line in bob_app.system.log.lines),
                            "the named line")  # fmt: skip
                contact = ann.store.contact(bob.key)
                assert contact is not None and contact.is_contact  # by the token
                assert ann.store.count_invites(now=0) == 0
                assert (mine := bob.store.contact(ann.key)) is not None and mine.is_contact
                # Both show each other as contacts, online.
                await until(ann_pilot, lambda: "1 peer" in topbar(ann_app), "bob online at ann's")
                # The code is spent: carol, who got it passed on, is told so.
                await paste_line(carol_pilot, f"/connect {code}")
                await until(
                    carol_pilot,
                    lambda: any("used already" in m for _, m in notifications(carol_app)),
                    "carol's refusal",
                )
                assert ann.store.contact(carol.key) is None
        finally:
            await host.stop()

    asyncio.run(scenario())


def test_a_peer_nearby_that_refused_us_is_the_status_bar_s_advice(
    people: Callable[[str], Person],
) -> None:
    """Nobody shows up because the one node nearby talks to its contacts only: the
    status bar says that (and what to do), not "no peers found"."""
    bob = people("bob")
    ann_id = people("ann").peer_id

    async def scenario() -> None:
        host = NodeHost()
        await host.start()
        try:
            app = app_for(bob, host, contacts_only=False)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.node is not None, "the node")
                node = app.node
                assert node is not None

                def note(name: str) -> None:
                    fields = {"id": ann_id, "by_peer": True, "code": "contacts-only"}
                    host.call(lambda: node._emit(DiscoveryNote(name, name, fields)))

                note("refused")
                await until(pilot, lambda: "talks to contacts only" in topbar(app), "advice")
                assert "invite code" in topbar(app)
                note("gone")
                await until(pilot, lambda: "contacts only" not in topbar(app), "it went")
        finally:
            await host.stop()

    asyncio.run(scenario())


def test_the_status_bar_says_when_the_profile_is_locked_or_announced_privately(
    people: Callable[[str], Person],
) -> None:
    from p2pchat.identity import LockedKey
    from p2pchat.locking.sealed import Secrets

    ann, bob = people("ann"), people("bob")
    # As `passphrase set` leaves a running profile (the window never sees the file).
    secrets = Secrets(ann.profile.identity.seed, bytes(32))
    ann.profile.relocked(secrets, LockedKey(ann.profile.home / "identity.key", "sealed"))

    async def scenario() -> None:
        host = NodeHost()
        await host.start()
        try:
            ann_app = app_for(ann, host, contacts_only=False)
            bob_app = app_for(bob, host, contacts_only=False)
            bob_app.settings.private_discovery = True
            async with (
                ann_app.run_test(size=SIZE) as ann_pilot,
                bob_app.run_test(size=SIZE),
            ):
                await until(ann_pilot, lambda: ann_app.node and bob_app.node, "both nodes")
                assert "ann (● available) · locked" in topbar(ann_app)
                assert "locked" not in topbar(bob_app) and "private" not in topbar(ann_app)
                assert "bob (● available) · private" in topbar(bob_app)
        finally:
            await host.stop()

    asyncio.run(scenario())
