"""The network slash commands: ``/peers`` (who is online, p2pchat's and XMPP
link-local peers), ``/network`` (private networks: list, create, join, invite, leave)
and ``/connect`` (a peer by invite code or address, and what came of it).

Split from :mod:`p2pchat.ui.slash`, whose :data:`~p2pchat.ui.slash.HANDLERS` maps each
name to these handlers; like those, they turn a parsed command into calls on the command
layer (:mod:`p2pchat.commands`, inside trio through the app), toasts and lines in the
system conversation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from p2pchat.chat.names import shown_name
from p2pchat.commands import CommandError, Connected, Target
from p2pchat.identity import decode_peer_id, fingerprint
from p2pchat.ui.people import PRESENCE_MARKS, counted
from p2pchat.ui.screens.network_code import NetworkCodeScreen
from p2pchat.ui.slash_base import in_node

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp


def cmd_peers(app: ChatApp, args: str) -> None:
    everyone = [s for s in app.seen.values() if s.status != "offline"]
    online = [s for s in everyone if s.proven]
    linked = [line for line in app.xmpp.lines() if line.status != "offline"]
    if not online and not linked:
        app.system.listing("Nobody found yet", ["/invite gives a code to share; /connect uses one"])
        return
    lines = [
        f"{PRESENCE_MARKS.get(s.status, '○')} {app.name_of(decode_peer_id(s.peer_id))} "
        f"({fingerprint(decode_peer_id(s.peer_id))})"
        for s in sorted(online, key=lambda s: s.nick.casefold())
    ]
    lines += [f"{PRESENCE_MARKS.get(line.status, '○')} {line.jid} (XMPP, not encrypted)"
              for line in linked]  # fmt: skip
    if len(everyone) > len(online):
        lines.append(f"and {len(everyone) - len(online):,} only heard of through others")
    app.system.listing(counted(len(online) + len(linked), "peer"), lines)


def cmd_network(app: ChatApp, args: str) -> None:
    """Private networks (docs/protocol.md §17): a key shared by code; members find and
    see only each other under it."""
    action, _, rest = args.strip().partition(" ")
    rest = rest.strip()
    if action in ("", "list"):
        networks = app.commands.networks()
        lines = [f"{n.name} · /network invite {n.name} shows its code" for n in networks]
        app.system.listing(
            f"Private networks ({len(networks)})",
            lines or ["none: /network create NAME makes one, /network join CODE joins one"],
        )
    elif action == "invite" and rest:
        code = app.commands.network_code(rest)
        app.system.listing(f"Code of {rest}: give it in person or over a channel you trust",
                           [code])  # fmt: skip
        app.push_screen(NetworkCodeScreen(rest, code))
    elif action == "create" and rest:
        in_node(app, lambda commands: commands.create_network(rest),
                f"Network {rest} created: /network invite {rest} shows its code")  # fmt: skip
    elif action == "join" and rest:
        in_node(app, lambda commands: commands.join_network(rest),
                "Joined: its members show up here as they are found")  # fmt: skip
    elif action == "leave" and rest:
        in_node(app, lambda commands: commands.leave_network(rest),
                f"Left {rest}: its key is deleted")  # fmt: skip
    else:
        raise CommandError("/network, /network create NAME, join CODE, invite NAME or leave NAME")


def cmd_connect(app: ChatApp, args: str) -> None:
    app.require_node()
    targets = app.commands.parse_target(args)
    app.spawn_in_node(connect_in_trio, app, targets)


async def connect_in_trio(app: ChatApp, targets: list[Target]) -> None:
    try:
        connected = await app.commands.connect(targets)
    except CommandError as error:
        app.notify(str(error), severity="error")
        return
    show_connected(app, targets, connected)
    app.call_later(app.refresh_sidebar)


def show_connected(app: ChatApp, targets: list[Target], connected: Connected) -> None:
    for note in connected.notes:
        if note.name not in ("verified", "spoof", "unreachable", "refused"):
            continue
        text = note.text
        peer_id = note.fields.get("id")
        if note.name == "verified" and note.fields.get("via") == "invite" and peer_id:
            name = note.fields.get("nick") or app.name_of(decode_peer_id(peer_id))
            text += f" — {name} is now a contact"
        elif note.name == "refused" and note.fields.get("code") == "contacts-only":
            target = next((t for t in targets if t.peer_id == peer_id), None)
            name = (target.nick if target else None) or shown_name(peer_id or "", "")
            text = f"{name} talks to contacts only"
            if target is not None and target.invite:
                text += ": this code was used already or has expired; ask for a new one"
        # A proof is already a line of the system conversation (the node's note): its
        # toast is not copied there. A failure is, as an error that marks the entry.
        app.notify(text, severity="information" if note.name == "verified" else "error",
                   system=note.name != "verified")  # fmt: skip
