"""What the two bars say: the top bar (who I am, the network's state, advice when
nobody shows up) and the title above the conversation (who or which room is open).

Functions taking the :class:`~p2pchat.ui.app.ChatApp`, which calls ``update_topbar`` and
``update_title`` whenever what they show may have changed; what only the top bar needs
to know the app keeps in a :class:`TopBarState`. When no peer shows up for a while, the
top bar runs the multicast checks of ``p2pchat doctor`` once and shows their advice.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from p2pchat.commands import CommandError
from p2pchat.diskfaults import DISK_FULL
from p2pchat.identity import decode_peer_id, encode_peer_id, fingerprint
from p2pchat.node.events import DiskTrouble, TorState
from p2pchat.ui.people import (
    PRESENCE_MARKS,
    PRESENCE_WORDS,
    Section,
    counted,
    member_of,
    room_network,
)

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp

NO_PEERS_AFTER = 10.0  # seconds without any peer before the status bar gives advice


@dataclass(slots=True)
class TopBarState:
    """What the top bar reports beyond the node's presence: the app updates it."""

    started: float = field(default_factory=time.monotonic)
    failure: str = ""  # why the node is not running
    disk: dict[str, DiskTrouble] = field(default_factory=dict)  # files refused now
    # Peers nearby that proved who they are but refused us (they talk to their
    # contacts only): the likely reason nobody shows up. Bounded by what mDNS tracks.
    refused_by: set[str] = field(default_factory=set)
    tor: TorState | None = None  # where our tor stands (--tor)
    advice: str = ""
    advice_asked: bool = False


def tor_words(state: TorState | None) -> str:
    """Our tor's state in the top bar's words."""
    if state is None or state.state == "starting":
        return "Tor starting…"
    if state.state == "connecting":
        if state.progress >= 100:  # joined; our onion service is being published
            return "Tor publishing…"
        return f"Tor connecting {state.progress}%"
    if state.state == "on":
        return "Tor on"
    return f"Tor off: {state.reason}"


def update_title(app: ChatApp) -> None:
    title = app.query_one("#chat-title", Static)
    if app.system.is_open:
        title.update(Text(app.system.title()))
        return
    if app.current_room is not None:
        title.update(Text(room_title(app, app.current_room)))
        return
    if app.xmpp.current is not None:
        title.update(app.xmpp.title(app.xmpp.current))
        return
    peer_id = app.current_peer
    if peer_id is None:
        title.update(Text("No conversation open"))
        return
    entry = app.entry(peer_id)
    seen = app.seen.get(peer_id)
    status = seen.status if seen else "offline"
    parts = [
        app.name_of(decode_peer_id(peer_id)),
        f"{PRESENCE_MARKS.get(status, '○')} {PRESENCE_WORDS.get(status, status)}",
    ]
    if seen and seen.status_text:
        parts.append(f'"{seen.status_text}"')
    if seen and seen.network:
        parts.append(f"in network {seen.network}")
    node = app.node
    if node is not None and node.reached_via(decode_peer_id(peer_id)) == "tor":
        # Beyond the LAN, through an onion service (§19); the round trip tells the
        # user why a receipt takes a moment there.
        rtt = node.latency(decode_peer_id(peer_id))
        parts.append("via Tor" if rtt is None else f"via Tor ({rtt * 1000:.0f} ms)")
    if entry is not None and entry.section is Section.REQUESTS:
        if entry.rooms:
            parts.append(member_of(entry.rooms))
        parts.append("wants to talk: /accept or /block")
    elif entry is None or entry.section is Section.NEARBY:
        key_print = fingerprint(decode_peer_id(peer_id))
        parts.append(f"not a contact yet (fingerprint {key_print}): writing adds them")
    elif entry is not None and entry.verified:
        parts.append("verified ✔")
    if entry is not None and entry.clash:
        parts.append("⚠ another peer uses this name: /verify")
    title.update(Text(" · ".join(parts)))  # a peer's nick and note: plain text


def update_topbar(app: ChatApp) -> None:
    if not app.screen_stack or not app.query("#topbar"):
        return  # closing
    state = app.top_bar
    own = app.commands.own_presence()
    status = own.status if own else app.settings.status
    left = (
        f"p2pchat ─ {app.profile.nick} "
        f"({PRESENCE_MARKS.get(status, '●')} {PRESENCE_WORDS.get(status, status)})"
    )
    if app.profile.locked:
        left += " · locked"  # encrypted on disk (p2pchat passphrase): said, not assumed
    if app.settings.private_discovery:
        left += " · private"  # announced as a token only contacts recognise (§10.2)
    if app.settings.xmpp_link_local:
        left += " · XMPP on, not encrypted"  # Pidgin's and finch's users see us (§18)
    if app.settings.contacts_only:
        left += " · contacts only"
    if app.settings.tor is not None:
        left += f" · {tor_words(state.tor)}"
    online = len([s for s in app.seen.values() if s.status != "offline" and s.proven])
    if state.disk:
        trouble = next(iter(state.disk.values()))
        what = "disk full" if trouble.code == DISK_FULL else "disk error"
        right = f"⚠ {what}: {os.path.basename(trouble.file)} cannot be written"
    elif state.failure:
        right = f"offline: {state.failure}; messages will wait"
    elif app.node is None:
        right = "starting…"
    elif online:
        right = f"{counted(online, 'peer')} · connected"
    elif state.refused_by and not app.settings.contacts_only:
        count = len(state.refused_by)
        who = "1 nearby talks" if count == 1 else f"{count} nearby talk"
        right = f"{who} to contacts only · ask for an invite code"
    elif not app.settings.mdns:
        right = "mDNS off: /connect CODE reaches someone, /invite gives your code"
    elif app.settings.contacts_only:
        # Strangers are not shown in this mode, so nobody here is the likely reason.
        right = "no contact online · /invite makes a code"
    elif time.monotonic() - state.started < NO_PEERS_AFTER:
        right = "discovering…"
    elif hidden := anonymous_nearby(app):
        right = f"{counted(hidden, 'p2pchat node')} nearby, shown to their contacts only"
        right += " · /invite or /connect"
    else:
        right = state.advice or "no peers found yet: /invite or /connect"
        if not state.advice_asked:
            state.advice_asked = True
            ask_doctor(app)
    bar = app.query_one("#topbar", Static)
    width = max(1, app.size.width - len(left) - len(right) - 4)  # 2 for padding
    bar.update(Text(f"{left} {'─' * width} {right}"))
    # The title counts who is online too (a person's state, a room's "2 online"): it is
    # redrawn with the top bar, on every presence change.
    if app.current_peer is not None or app.current_room is not None:
        update_title(app)


def anonymous_nearby(app: ChatApp) -> int:
    """Nodes in private discovery nearby that we cannot recognise (strangers to us)."""
    return app.node.anonymous_nearby() if app.node is not None else 0


def ask_doctor(app: ChatApp) -> None:
    """Nobody after a while: run the multicast checks of `p2pchat doctor` once and
    put their advice in the status bar."""

    async def check() -> None:
        report = await app.commands.check_network(
            app.profile.home, app.settings.interfaces, node=False
        )
        failed = [f for f in report.findings if not f.ok and f.advice]
        advice = (
            failed[0].advice
            if failed
            else "other hosts answer on mDNS here, but none runs p2pchat yet?"
        )
        app.call_later(show_advice, app, advice.replace("p2pchat invite", "/invite"))

    try:
        app.spawn_in_node(check)
    except CommandError:
        return  # no node (any more): nothing to advise about


def show_advice(app: ChatApp, advice: str) -> None:
    app.top_bar.advice = f"no peers found — {advice}"
    update_topbar(app)


def room_title(app: ChatApp, room_hex: str) -> str:
    room_id = bytes.fromhex(room_hex)
    row = app.commands.stored_room(room_id)
    name = row.name if row is not None else "?"
    try:
        room = app.commands.room(room_id)
    except CommandError:
        return f"# {name}"
    online = sum(1 for m in room.members if m == app.me or online_key(app, m))
    title = f"# {name} · {counted(len(room.members), 'member')} · {online} online"
    network = room_network(room.members, app.me, app.seen)
    if network:
        title += f" · in network {network}"
    topic = " ".join(app.commands.room_topic(room_id).split())  # one line
    return f"{title} · {topic}" if topic else title


def online_key(app: ChatApp, key: bytes) -> bool:
    seen = app.seen.get(encode_peer_id(key))
    return seen is not None and seen.status != "offline"
