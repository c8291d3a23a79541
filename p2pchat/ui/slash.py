"""What a composer line does: a message to send, or a slash command to run.

Functions taking the :class:`~p2pchat.ui.app.ChatApp`: the handlers of every slash
command (``/msg``, ``/accept``, ``/block``, ``/verify``, the room commands, ``/invite``,
``/connect`` …) and the sending of plain text. Parsing and completion are pure and live
in :mod:`p2pchat.ui.commands`; this module turns a parsed command into calls on the
command layer (:mod:`p2pchat.commands`, inside trio through the app) and toasts. A new
command is one ``cmd_`` function here and its entry in :data:`HANDLERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from p2pchat.chat.names import shown_name
from p2pchat.chat.rules import text_problem
from p2pchat.commands import CommandError, Commands, Connected, Target
from p2pchat.errors import ProfileError
from p2pchat.identity import decode_peer_id, fingerprint
from p2pchat.ui import clipboard
from p2pchat.ui.commands import (
    Command,
    complete,
    literal_text,
    parse,
    resolve_peer,
    split_status,
    split_target,
)
from p2pchat.ui.messages import Sent
from p2pchat.ui.paths import complete_path
from p2pchat.ui.people import PRESENCE_MARKS, Section, counted, is_xmpp_id, people_for_lookup
from p2pchat.ui.screens.network_code import NetworkCodeScreen
from p2pchat.ui.screens.search import cmd_search
from p2pchat.ui.screens.verify import VerifyScreen
from p2pchat.ui.widgets.composer import Composer
from p2pchat.ui.xmpp_desk import NO_KEY
from p2pchat.wire.messages import MAX_TOPIC_CHARS

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp

T = TypeVar("T")


def complete_line(app: ChatApp, line: str) -> list[str]:
    if line.startswith("/send ") and len(line) > len("/send "):
        return [f"/send {path}" for path in complete_path(line[len("/send ") :].lstrip())]
    return complete(line, [e.name for e in app.entries])


def composer_submitted(app: ChatApp, message: Composer.Submitted) -> bool:
    """Send or run a composer line; False if it was refused at once (the line stays)."""
    text = message.text
    try:
        command = parse(text)
    except CommandError as error:
        app.notify(str(error), severity="warning")
        return False
    if command is None:
        return send(app, literal_text(text))
    return run_command(app, command)


def send(app: ChatApp, text: str, peer_id: str | None = None, *, action: bool = False) -> bool:
    """Hand ``text`` to the node for the open room or person (or ``peer_id``); False,
    after saying why, if it cannot go (what only the node can find out is said later).
    ``action``: a /me line."""
    problem = text_problem(text)
    if problem:
        app.notify(f"Not sent: {problem}.", severity="warning")
        return False
    room = app.current_room
    if peer_id is None and room is not None:
        room_id = bytes.fromhex(room)
        try:
            in_node(app, lambda commands: commands.send_to_room(room_id, text, action=action), "")
        except CommandError as error:
            app.notify(str(error), severity="warning")
            return False
        return True
    xmpp_peer = app.xmpp.current if peer_id is None else peer_id
    if xmpp_peer is not None and is_xmpp_id(xmpp_peer):
        if xmpp_peer != app.xmpp.current:
            app.open_xmpp(xmpp_peer)
        # XMPP has no actions: its clients show a body starting "/me " as one.
        return app.xmpp.send(f"/me {text}" if action else text)
    peer_id = peer_id or app.current_peer
    if peer_id is None:
        app.notify("Open a conversation first: pick one on the left, or /msg NICK")
        return False
    if app.node is None:
        app.notify(app.not_ready(), severity="warning")
        return False
    commands = app.commands
    peer = decode_peer_id(peer_id)

    def send() -> None:
        try:
            stored = commands.send(peer, text, action=action)
        except CommandError as error:
            if error.fault:  # e.g. a full disk: nothing was stored or sent
                app.notify(f"{error}. ↑ in the empty composer brings the text back.",
                           title="Not sent", severity="error")  # fmt: skip
            else:
                app.notify(str(error), severity="warning")
            return
        app.post_message(Sent(peer_id, stored.msg_id))

    app.call_in_node(send)
    return True


# ------------------------------------------------------------------ commands


def run_command(app: ChatApp, command: Command) -> bool:
    """Run a slash command; False if it was refused at once (a handler raises
    CommandError, or returns False after saying why)."""
    handler = HANDLERS.get(command.name)
    if handler is None:
        app.notify(f"/{command.name} is not available here", severity="warning")
        return False
    try:
        return handler(app, command.args) is not False
    except CommandError as error:
        app.notify(str(error), severity="warning")
        return False


def in_node(
    app: ChatApp,
    action: Callable[[Commands], T],
    done: str,
    then: Callable[[T], None] | None = None,
) -> None:
    """Run a command inside trio; say ``done`` (or the error) when it ran."""
    commands = app.commands

    def run() -> None:
        try:
            result = action(commands)
        except CommandError as error:  # e.g. an invitation that is refused
            app.notify(str(error), severity="warning")
            return
        if done:
            app.notify(done)
        if then is not None:
            app.call_later(then, result)
        app.call_later(app.refresh_sidebar)

    app.call_in_node(run)


def resolve(app: ChatApp, query: str) -> str:
    return resolve_peer(query, people_for_lookup(app.entries))


def cmd_help(app: ChatApp, args: str) -> None:
    app.action_help()


def cmd_quit(app: ChatApp, args: str) -> None:
    app.exit()


def cmd_msg(app: ChatApp, args: str) -> bool:
    target, text = split_target(args)
    peer_id = resolve(app, target)
    app.open_conversation(peer_id)
    return send(app, text, peer_id) if text else True


def cmd_me(app: ChatApp, args: str) -> bool:
    return send(app, args, action=True)


def cmd_nick(app: ChatApp, args: str) -> None:
    try:
        app.profile.set_nick(args)
    except ProfileError as error:
        raise CommandError(f"{error}.") from None
    set_presence(app, nick=app.profile.nick)


def cmd_status(app: ChatApp, args: str) -> None:
    status, text = split_status(args)
    set_presence(app, status=status, status_text=text)


def cmd_away(app: ChatApp, args: str) -> None:
    set_presence(app, status="away", status_text=args)


def cmd_back(app: ChatApp, args: str) -> None:
    set_presence(app, status="avail", status_text="")


def set_presence(app: ChatApp, **changes: Any) -> None:
    app.spawn_in_node(presence_in_trio, app, changes)


async def presence_in_trio(app: ChatApp, changes: dict[str, Any]) -> None:
    try:
        await app.commands.set_presence(**changes)
    except CommandError as error:
        app.notify(str(error), severity="warning")
    app.call_later(app.update_topbar)


def cmd_accept(app: ChatApp, args: str) -> None:
    make_contact(app, resolve(app, args))


def cmd_add(app: ChatApp, args: str) -> None:
    """/add NICK: someone nearby (or who asked) becomes a contact."""
    wanted = args.strip()
    unknown = [e for e in app.entries if e.section in (Section.NEARBY, Section.REQUESTS)]
    contacts = [e for e in app.entries if e.section is Section.CONTACTS]
    try:
        peer_id = resolve_peer(wanted, people_for_lookup(unknown))
    except CommandError as nobody:  # nobody nearby by that name, or several (listed)
        try:
            known = resolve_peer(wanted, people_for_lookup(contacts))
        except CommandError:
            raise nobody from None
        name = app.name_of(decode_peer_id(known))
        raise CommandError(f"{name} is already a contact: /msg {wanted}") from None
    make_contact(app, peer_id)


def make_contact(app: ChatApp, peer_id: str) -> None:
    if is_xmpp_id(peer_id):
        app.xmpp.accept(peer_id)
        return
    peer = decode_peer_id(peer_id)

    def add(commands: Commands) -> object:
        # Someone who sent no request (nearby, say) is added; a request is accepted.
        if commands.request(peer) is None:
            return commands.add_contact(peer)
        return commands.accept(peer)

    in_node(app, add, "")
    app.notify(f"{app.name_of(peer)} is now a contact")
    app.schedule_refresh()


def cmd_block(app: ChatApp, args: str) -> None:
    blocking(app, args, True)


def cmd_unblock(app: ChatApp, args: str) -> None:
    blocking(app, args, False)


def blocking(app: ChatApp, args: str, blocked: bool) -> None:
    peer_id = resolve(app, args)
    if is_xmpp_id(peer_id):
        app.xmpp.set_blocked(peer_id, blocked)
        return
    peer = decode_peer_id(peer_id)
    in_node(app, lambda commands: commands.set_blocked(peer, blocked), "")
    name = app.name_of(peer)
    app.notify(f"{name} is {'blocked' if blocked else 'no longer blocked'}")
    app.schedule_refresh()


def cmd_verify(app: ChatApp, args: str) -> None:
    peer_id = resolve(app, args) if args else app.current_peer or app.xmpp.current
    if peer_id is None:
        raise CommandError("open a conversation, or name someone: /verify NICK")
    if is_xmpp_id(peer_id):
        raise CommandError(NO_KEY.format(jid=peer_id))
    show_verify(app, peer_id)


def show_verify(app: ChatApp, peer_id: str) -> None:
    key = decode_peer_id(peer_id)
    screen = VerifyScreen(
        my_key=app.me,
        their_key=key,
        their_name=app.name_of(key),
        verified=app.commands.verification(key).verified,
    )

    def done(result: bool | None) -> None:
        if result is None:
            return

        def apply(commands: Commands) -> None:  # inside trio: adding a contact may talk
            existing = commands.contact(key)
            if existing is None or not existing.is_contact:
                commands.add_contact(key)
            commands.set_verified(key, result)
            app.call_later(app.update_title)

        in_node(app, apply, "")
        app.notify(f"{app.name_of(key)} is {'verified ✔' if result else 'not verified'}")

    app.push_screen(screen, done)


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


# rooms


def open_room_id(app: ChatApp) -> bytes:
    if app.current_room is None:
        raise CommandError("open a room first (or /create NAME)")
    return bytes.fromhex(app.current_room)


def cmd_create(app: ChatApp, args: str) -> None:
    in_node(app, lambda commands: commands.create_room(args), f"Room #{args} created: /invite NICK",
            lambda room: app.open_room(room.room_id.hex()))  # fmt: skip


def cmd_join(app: ChatApp, args: str) -> None:
    wanted = args.strip().lstrip("#").casefold()
    matching = [r for r in app.commands.stored_rooms()
                if r.name.casefold() == wanted or r.room_id.hex() == wanted]  # fmt: skip
    joined = [r for r in matching if r.joined]
    if joined:  # already a member: just open it
        app.open_room(joined[0].room_id.hex())
        return
    invited = [r for r in matching if not r.joined]
    if not invited:
        raise CommandError(f"no room or invitation called {args!r}")
    room_id = invited[0].room_id
    in_node(app, lambda commands: commands.join_room(room_id), "",
            lambda room: app.open_room(room.room_id.hex()))  # fmt: skip


def cmd_leave(app: ChatApp, args: str) -> None:
    room_id = open_room_id(app)
    # What it did is said once, with the room's name, when the node reports it (RoomGone).
    in_node(app, lambda commands: commands.leave_room(room_id), "")


def cmd_remove(app: ChatApp, args: str) -> None:
    room_id = open_room_id(app)
    peer = decode_peer_id(resolve(app, args))
    # Said in the room when the node reports the change (a line, not a toast).
    in_node(app, lambda commands: commands.remove_from_room(room_id, peer), "")


def cmd_members(app: ChatApp, args: str) -> None:
    open_room_id(app)
    app.action_members()


def cmd_topic(app: ChatApp, args: str) -> None:
    room_id = open_room_id(app)
    if not args:
        topic = app.commands.room_topic(room_id)
        app.notify(f"The topic: {topic}" if topic else "No topic yet: /topic TEXT sets one")
        return
    if len(args) > MAX_TOPIC_CHARS:  # said now, while the line is still there
        raise CommandError(f"a topic has at most {MAX_TOPIC_CHARS} characters, this one "
                           f"{len(args)}")  # fmt: skip
    in_node(app, lambda commands: commands.set_topic(room_id, args), "")


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


def cmd_contacts(app: ChatApp, args: str) -> None:
    list_section(app, Section.CONTACTS, "No contacts yet: pick someone under NEARBY.")


def cmd_requests(app: ChatApp, args: str) -> None:
    list_section(app, Section.REQUESTS, "No pending requests.")


def list_section(app: ChatApp, section: Section, empty: str) -> None:
    rows = [e for e in app.entries if e.section is section]
    if not rows:
        app.system.listing(section.value.title(), [empty])
        return
    lines = [f"{e.mark} {e.name}" + (" ✔" if e.verified else "") for e in rows]
    app.system.listing(f"{section.value.title()} ({len(rows)})", lines)


def contact_to_invite(app: ChatApp, query: str) -> bytes:
    peer_id = resolve(app, query)
    entry = app.entry(peer_id)
    in_network = entry is not None and entry.network and not entry.blocked
    if entry is not None and entry.xmpp:
        raise CommandError(f"{entry.name} uses XMPP: rooms are encrypted, so only p2pchat "
                           "users can join them")  # fmt: skip
    if entry is None or (entry.section is not Section.CONTACTS and not in_network):
        # Rooms admit contacts only (their keys go to people we chose), and members of
        # our private networks (docs/protocol.md §17.3).
        name = query.strip() if entry is None else entry.name
        name = name if not any(c.isspace() for c in name) else peer_id
        raise CommandError(f"{name} is not a contact: add them first with /add {name}")
    return decode_peer_id(peer_id)


def invitees(app: ChatApp, args: str) -> list[bytes]:
    """``/invite alice`` or ``/invite alice bob carol`` (several at once share one new
    epoch); a nick with spaces in it is tried whole first."""
    try:
        return [contact_to_invite(app, args)]
    except CommandError:
        words = args.split()
        if len(words) < 2:
            raise
    peers = [contact_to_invite(app, word) for word in words]
    return list(dict.fromkeys(peers))


def cmd_invite(app: ChatApp, args: str) -> None:
    if args:  # in a room: invite contacts into it
        room_id = open_room_id(app)
        peers = invitees(app, args)
        # Said in the room when the node reports the change (a line, not a toast).
        in_node(app, lambda commands: commands.invite_to_room(room_id, *peers), "")
        return
    app.require_node()
    try:
        code = app.commands.invite().code  # a fresh one-time token, remembered in the store
    except CommandError as error:  # a full disk: the token could not be kept
        raise CommandError(f"no invite code: {error}") from None
    if clipboard.copy(app, code):
        how = "Copied to the clipboard."
    else:  # nothing says whether the terminal took it: say how to take it instead
        how = (
            "Select the line above with the mouse (Shift+drag in most terminals). "
            "Cut off? Widen the window, or run 'p2pchat invite' in a shell."
        )
    app.system.code(
        "Your invite code: it admits one person, for a week; they type /connect CODE",
        code,
        how,
        short="Invite code" + (" copied" if how.startswith("Copied") else ""),
    )


def cmd_find(app: ChatApp, args: str) -> None:
    """Show the system conversation, only its lines that contain ``args`` (all of
    them when empty), as weechat's search in its core buffer."""
    found = app.system.find(args)
    if not app.system.is_open:
        app.action_open_system()
    else:
        app.update_title()
    if args and not found:
        shown = args if len(args) <= 40 else args[:39] + "…"  # a paste can be long
        app.notify(f"No system line contains “{shown}”; /find alone shows all", system=False)


def cmd_system(app: ChatApp, args: str) -> None:
    app.action_open_system()


def cmd_send(app: ChatApp, args: str) -> bool:
    return app.files.send(args)


def cmd_files(app: ChatApp, args: str) -> None:
    app.files.show_panel()


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


def cmd_xmpp(app: ChatApp, args: str) -> bool:
    """/xmpp USER@HOST [TEXT]: open the chat with an XMPP link-local peer (one not in
    the sidebar too: its record may not have come yet), and send TEXT if given."""
    jid, _, text = args.strip().partition(" ")
    if "@" not in jid:
        raise CommandError("usage: /xmpp USER@HOST [TEXT] (/peers lists who is nearby)")
    app.xmpp.require_bridge()
    app.open_xmpp(jid)
    return app.xmpp.send(text.strip()) if text.strip() else True


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
        app.notify(text, severity="information" if note.name == "verified" else "error")


# By name, as the parser spells them; a name missing here gets "not available here".
HANDLERS: dict[str, Callable[[ChatApp, str], bool | None]] = {
    "help": cmd_help,
    "quit": cmd_quit,
    "msg": cmd_msg,
    "me": cmd_me,
    "nick": cmd_nick,
    "status": cmd_status,
    "away": cmd_away,
    "back": cmd_back,
    "add": cmd_add,
    "accept": cmd_accept,
    "block": cmd_block,
    "unblock": cmd_unblock,
    "verify": cmd_verify,
    "peers": cmd_peers,
    "network": cmd_network,
    "search": cmd_search,
    "send": cmd_send,
    "files": cmd_files,
    "create": cmd_create,
    "join": cmd_join,
    "leave": cmd_leave,
    "remove": cmd_remove,
    "members": cmd_members,
    "topic": cmd_topic,
    "contacts": cmd_contacts,
    "requests": cmd_requests,
    "invite": cmd_invite,
    "connect": cmd_connect,
    "xmpp": cmd_xmpp,
    "find": cmd_find,
    "system": cmd_system,
}
