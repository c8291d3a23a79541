"""What a composer line does: a message to send, or a slash command to run.

Functions taking the :class:`~p2pchat.ui.app.ChatApp`: the handlers of the slash
commands (``/msg``, ``/nick``, ``/accept``, ``/block``, ``/verify``, ``/find`` …), the
table of all of them (:data:`HANDLERS`) and the sending of plain text. The room commands
(``/create``, ``/join``, ``/invite`` …) live in :mod:`p2pchat.ui.slash_rooms`, the
network ones (``/peers``, ``/network``, ``/connect``) in :mod:`p2pchat.ui.slash_network`,
and the helpers all of them use (``in_node``, ``resolve``) in
:mod:`p2pchat.ui.slash_base`. Parsing and completion are pure and live in
:mod:`p2pchat.ui.commands`; these modules turn a parsed command into calls on the
command layer (:mod:`p2pchat.commands`, inside trio through the app) and toasts. A new
command is one ``cmd_`` function here (or in its family's module) and its entry in
:data:`HANDLERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from p2pchat.chat.rules import text_problem
from p2pchat.commands import CommandError, Commands
from p2pchat.errors import ProfileError
from p2pchat.identity import decode_peer_id
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
from p2pchat.ui.people import Section, is_xmpp_id, people_for_lookup
from p2pchat.ui.screens.search import cmd_search
from p2pchat.ui.screens.verify import VerifyScreen
from p2pchat.ui.slash_base import in_node, resolve
from p2pchat.ui.slash_network import cmd_connect, cmd_network, cmd_peers
from p2pchat.ui.slash_rooms import (
    cmd_create,
    cmd_invite,
    cmd_join,
    cmd_leave,
    cmd_members,
    cmd_remove,
    cmd_topic,
)
from p2pchat.ui.widgets.composer import Composer
from p2pchat.ui.xmpp_desk import NO_KEY

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp


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


def cmd_xmpp(app: ChatApp, args: str) -> bool:
    """/xmpp USER@HOST [TEXT]: open the chat with an XMPP link-local peer (one not in
    the sidebar too: its record may not have come yet), and send TEXT if given."""
    jid, _, text = args.strip().partition(" ")
    if "@" not in jid:
        raise CommandError("usage: /xmpp USER@HOST [TEXT] (/peers lists who is nearby)")
    app.xmpp.require_bridge()
    app.open_xmpp(jid)
    return app.xmpp.send(text.strip()) if text.strip() else True


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
