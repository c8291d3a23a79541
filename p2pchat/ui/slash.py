"""What a composer line does: a message to send, or a slash command to run.

Functions taking the :class:`~p2pchat.ui.app.ChatApp`: the handlers of every slash
command (``/msg``, ``/accept``, ``/block``, ``/verify``, the room commands, ``/invite``,
``/connect`` …) and the sending of plain text. Parsing and completion are pure and live
in :mod:`p2pchat.ui.commands`; this module turns a parsed command into calls on the node
(inside trio, through the app's host) and toasts. A new command is one ``cmd_`` function
here and its entry in :data:`HANDLERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from p2pchat.discovery.known import static_targets
from p2pchat.errors import P2PChatError, ProfileError
from p2pchat.identity import decode_peer_id, fingerprint
from p2pchat.node.chat import ChatService
from p2pchat.node.node import Node
from p2pchat.node.rooms import RoomService
from p2pchat.ui.commands import (
    Command,
    CommandError,
    complete,
    literal_text,
    parse,
    resolve_peer,
    split_status,
    split_target,
)
from p2pchat.ui.messages import Sent
from p2pchat.ui.people import PRESENCE_MARKS, Section, people_for_lookup
from p2pchat.ui.screens.verify import VerifyScreen
from p2pchat.ui.widgets.composer import Composer

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp


def complete_line(app: ChatApp, line: str) -> list[str]:
    return complete(line, [e.name for e in app._entries])


def composer_submitted(app: ChatApp, message: Composer.Submitted) -> None:
    text = message.text
    try:
        command = parse(text)
    except CommandError as error:
        app.notify(str(error), severity="warning")
        return
    if command is None:
        send(app, literal_text(text))
    else:
        run_command(app, command)


def send(app: ChatApp, text: str, peer_id: str | None = None) -> None:
    if peer_id is None and app._room is not None:
        room_id = bytes.fromhex(app._room)
        rooms_call(app, lambda rooms: rooms.send(room_id, text), "")
        return
    peer_id = peer_id or app._peer
    if peer_id is None:
        app.notify("Open a conversation first: pick one on the left, or /msg NICK")
        return
    node, host = app.node, app._host
    if node is None or node.chat is None or host is None:
        app.notify(not_ready(app), severity="warning")
        return
    chat = node.chat
    peer = decode_peer_id(peer_id)

    def send() -> None:
        try:
            stored = chat.send_text(peer, text)
        except ValueError as error:
            app.notify(str(error), severity="warning")
            return
        except P2PChatError as error:  # e.g. a full disk: nothing was stored or sent
            app.notify(f"{error}. ↑ in the empty composer brings the text back.",
                        title="Not sent", severity="error")  # fmt: skip
            return
        app.post_message(Sent(peer_id, stored.msg_id))

    host.call(send)


# ------------------------------------------------------------------ commands


def run_command(app: ChatApp, command: Command) -> None:
    handler = HANDLERS.get(command.name)
    if handler is None:
        app.notify(f"/{command.name} is not available here", severity="warning")
        return
    try:
        handler(app, command.args)
    except CommandError as error:
        app.notify(str(error), severity="warning")


def resolve(app: ChatApp, query: str) -> str:
    return resolve_peer(query, people_for_lookup(app._entries))


def cmd_help(app: ChatApp, args: str) -> None:
    app.action_help()


def cmd_quit(app: ChatApp, args: str) -> None:
    app.exit()


def cmd_msg(app: ChatApp, args: str) -> None:
    target, text = split_target(args)
    peer_id = resolve(app, target)
    app.open_conversation(peer_id)
    if text:
        send(app, text, peer_id)


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
    node, host = app.node, app._host
    if node is None or host is None:
        raise CommandError(not_ready(app))
    host.spawn(presence_in_trio, app, node, changes)


async def presence_in_trio(app: ChatApp, node: Node, changes: dict[str, Any]) -> None:
    try:
        await node.set_presence(**changes)
    except ValueError as error:
        app.notify(str(error), severity="warning")
    app.call_later(app._update_topbar)


def cmd_accept(app: ChatApp, args: str) -> None:
    peer_id = resolve(app, args)
    chat = chat_service(app)
    assert app._host is not None
    app._host.call(chat.accept, decode_peer_id(peer_id))
    app.notify(f"{app.name_of(decode_peer_id(peer_id))} is now a contact")
    app._schedule_refresh()


def cmd_block(app: ChatApp, args: str) -> None:
    blocking(app, args, True)


def cmd_unblock(app: ChatApp, args: str) -> None:
    blocking(app, args, False)


def blocking(app: ChatApp, args: str, blocked: bool) -> None:
    peer_id = resolve(app, args)
    chat = chat_service(app)
    assert app._host is not None
    app._host.call(chat.set_blocked, decode_peer_id(peer_id), blocked)
    name = app.name_of(decode_peer_id(peer_id))
    app.notify(f"{name} is {'blocked' if blocked else 'no longer blocked'}")
    app._schedule_refresh()


def cmd_verify(app: ChatApp, args: str) -> None:
    peer_id = resolve(app, args) if args else app._peer
    if peer_id is None:
        raise CommandError("open a conversation, or name someone: /verify NICK")
    show_verify(app, peer_id)


def show_verify(app: ChatApp, peer_id: str) -> None:
    key = decode_peer_id(peer_id)
    contact = app.store.contact(key)
    screen = VerifyScreen(
        my_key=app.me,
        their_key=key,
        their_name=app.name_of(key),
        verified=bool(contact and contact.verified),
    )

    def done(result: bool | None) -> None:
        if result is None:
            return
        chat, host = chat_service(app), app._host
        assert host is not None

        def apply() -> None:  # inside trio: adding a contact may talk to the peer
            existing = app.store.contact(key)
            if existing is None or not existing.is_contact:
                chat.add_contact(key)
            app.store.set_verified(key, result)
            app.call_later(app._refresh_sidebar)
            app.call_later(app._update_title)

        host.call(apply)
        app.notify(f"{app.name_of(key)} is {'verified ✔' if result else 'not verified'}")

    app.push_screen(screen, done)


def cmd_peers(app: ChatApp, args: str) -> None:
    everyone = [s for s in app._seen.values() if s.status != "offline"]
    online = [s for s in everyone if s.proven]
    if not online:
        app.notify("Nobody found yet. /invite gives a code to share; /connect uses one.")
        return
    lines = [
        f"{PRESENCE_MARKS.get(s.status, '○')} {app.name_of(decode_peer_id(s.peer_id))} "
        f"({fingerprint(decode_peer_id(s.peer_id))})"
        for s in sorted(online, key=lambda s: s.nick.casefold())
    ][:20]
    if len(everyone) > len(online):
        lines.append(f"and {len(everyone) - len(online):,} only heard of through others")
    app.notify("\n".join(lines), title=f"{len(online)} peers", timeout=10)


# rooms


def room_service(app: ChatApp) -> RoomService:
    if app.node is None or app.node.rooms is None:
        raise CommandError(not_ready(app))
    return app.node.rooms


def open_room_id(app: ChatApp) -> bytes:
    if app._room is None:
        raise CommandError("open a room first (or /create NAME)")
    return bytes.fromhex(app._room)


def rooms_call(
    app: ChatApp,
    action: Callable[[RoomService], Any],
    done: str,
    then: Callable[[Any], None] | None = None,
) -> None:
    """Run a room command inside trio; say ``done`` (or the error) when it ran."""
    rooms, host = room_service(app), app._host
    assert host is not None

    def run() -> None:
        try:
            result = action(rooms)
        except (ValueError, P2PChatError) as error:  # e.g. an invitation that is refused
            app.notify(str(error), severity="warning")
            return
        if done:
            app.notify(done)
        if then is not None:
            app.call_later(then, result)
        app.call_later(app._refresh_sidebar)

    host.call(run)


def cmd_create(app: ChatApp, args: str) -> None:
    rooms_call(app, lambda rooms: rooms.create(args), f"Room #{args} created: /invite NICK",
                     lambda room: app.open_room(room.room_id.hex()))  # fmt: skip


def cmd_join(app: ChatApp, args: str) -> None:
    wanted = args.strip().lstrip("#").casefold()
    matching = [r for r in app.store.rooms()
                if r.name.casefold() == wanted or r.room_id.hex() == wanted]  # fmt: skip
    joined = [r for r in matching if r.joined]
    if joined:  # already a member: just open it
        app.open_room(joined[0].room_id.hex())
        return
    invited = [r for r in matching if not r.joined]
    if not invited:
        raise CommandError(f"no room or invitation called {args!r}")
    room_id = invited[0].room_id
    rooms_call(app, lambda rooms: rooms.join(room_id), "",
                     lambda room: app.open_room(room.room_id.hex()))  # fmt: skip


def cmd_leave(app: ChatApp, args: str) -> None:
    room_id = open_room_id(app)
    rooms_call(app, lambda rooms: rooms.leave(room_id), "You left the room")


def cmd_remove(app: ChatApp, args: str) -> None:
    room_id = open_room_id(app)
    peer = decode_peer_id(resolve(app, args))
    rooms_call(app, lambda rooms: rooms.remove(room_id, peer),
                     f"{app.name_of(peer)} is removed; the room has a new key")  # fmt: skip


def cmd_members(app: ChatApp, args: str) -> None:
    room_id = open_room_id(app)
    listed = room_service(app).members(room_id)
    lines = [f"{'●' if online else '○'} {app.name_of(key)}" for key, online in listed]
    app.notify("\n".join(lines[:30]), title=f"{len(listed)} members", timeout=10)


def cmd_contacts(app: ChatApp, args: str) -> None:
    list_section(app, Section.CONTACTS, "No contacts yet: pick someone under NEARBY.")


def cmd_requests(app: ChatApp, args: str) -> None:
    list_section(app, Section.REQUESTS, "No pending requests.")


def list_section(app: ChatApp, section: Section, empty: str) -> None:
    rows = [e for e in app._entries if e.section is section]
    if not rows:
        app.notify(empty)
        return
    lines = [f"{e.mark} {e.name}" + (" ✔" if e.verified else "") for e in rows[:20]]
    app.notify("\n".join(lines), title=section.value.title(), timeout=10)


def cmd_invite(app: ChatApp, args: str) -> None:
    if args:  # in a room: invite a contact into it
        room_id = open_room_id(app)
        peer = decode_peer_id(resolve(app, args))
        rooms_call(app, lambda rooms: rooms.invite(room_id, peer),
                         f"{app.name_of(peer)} is invited")  # fmt: skip
        return
    node = app.node
    if node is None:
        raise CommandError(not_ready(app))
    nick = app.profile.nick if app.settings.announce_nick else None
    try:
        code = node.invite(nick).code  # a fresh one-time token, remembered in the store
    except P2PChatError as error:  # a full disk: the token could not be kept
        raise CommandError(f"no invite code: {error}") from None
    app.copy_to_clipboard(code)
    app.notify(
        code,
        title="Your invite code (copied; it admits one person, for a week): others type "
        "/connect CODE",
        timeout=30,
    )


def cmd_connect(app: ChatApp, args: str) -> None:
    node, host = app.node, app._host
    if node is None or host is None:
        raise CommandError(not_ready(app))
    try:
        targets = static_targets(None, [args])
    except ValueError as error:
        raise CommandError(str(error)) from None
    host.spawn(connect_in_trio, app, node, targets)


async def connect_in_trio(app: ChatApp, node: Node, targets: list[Any]) -> None:
    for note in await node.connect(targets):
        if note.name not in ("verified", "spoof", "unreachable", "refused"):
            continue
        text = note.text
        peer_id = note.fields.get("id")
        if note.name == "verified" and note.fields.get("via") == "invite" and peer_id:
            name = note.fields.get("nick") or app.name_of(decode_peer_id(peer_id))
            text += f" — {name} is now a contact"
        elif note.name == "refused" and note.fields.get("code") == "contacts-only":
            target = next((t for t in targets if t.peer_id == peer_id), None)
            name = (target.nick if target else None) or (peer_id or "")[:12]
            text = f"{name} talks to contacts only"
            if target is not None and target.invite:
                text += ": this code was used already or has expired; ask for a new one"
        app.notify(text, severity="information" if note.name == "verified" else "error")
    app.call_later(app._refresh_sidebar)


def chat_service(app: ChatApp) -> ChatService:
    if app.node is None or app.node.chat is None:
        raise CommandError(not_ready(app))
    return app.node.chat


def not_ready(app: ChatApp) -> str:
    if app._failure:
        return f"the node is not running ({app._failure}); restart p2pchat"
    return "still starting: try again in a moment"


# By name, as the parser spells them; a name missing here gets "not available here".
HANDLERS: dict[str, Callable[[ChatApp, str], None]] = {
    "help": cmd_help,
    "quit": cmd_quit,
    "msg": cmd_msg,
    "nick": cmd_nick,
    "status": cmd_status,
    "away": cmd_away,
    "back": cmd_back,
    "accept": cmd_accept,
    "block": cmd_block,
    "unblock": cmd_unblock,
    "verify": cmd_verify,
    "peers": cmd_peers,
    "create": cmd_create,
    "join": cmd_join,
    "leave": cmd_leave,
    "remove": cmd_remove,
    "members": cmd_members,
    "contacts": cmd_contacts,
    "requests": cmd_requests,
    "invite": cmd_invite,
    "connect": cmd_connect,
}
