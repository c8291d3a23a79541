"""The room slash commands: ``/create``, ``/join``, ``/leave``, ``/remove``,
``/members``, ``/topic`` and ``/invite`` (into the open room; alone, it gives our invite
code instead), with who may be invited and which room is meant.

Split from :mod:`p2pchat.ui.slash`, whose :data:`~p2pchat.ui.slash.HANDLERS` maps each
name to these handlers; like those, they turn a parsed command into calls on the command
layer (:mod:`p2pchat.commands`, inside trio through the app) and toasts, and what a
change did is mostly said in the room when the node reports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from p2pchat.commands import CommandError
from p2pchat.identity import decode_peer_id
from p2pchat.ui import clipboard
from p2pchat.ui.people import Section
from p2pchat.ui.slash_base import in_node, resolve
from p2pchat.wire.messages import MAX_TOPIC_CHARS

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp


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
