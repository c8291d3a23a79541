"""The ``p2pchat`` command: profiles, identity, a headless node and ping."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import re
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any, TextIO

import trio

from p2pchat import __version__
from p2pchat.addresses import format_host_port, parse_host_port
from p2pchat.api.control import answer_lines, call_control, read_lines, serve_control
from p2pchat.api.handler import MAX_PINGS, ApiHandler
from p2pchat.api.output import LineOutput
from p2pchat.api.protocol import API_VERSION, encode_event
from p2pchat.chat.relay import RelayLimits
from p2pchat.discovery.dial import dial_all
from p2pchat.discovery.doctor import run_checks
from p2pchat.discovery.known import (
    KNOWN_FILE,
    KnownPeers,
    make_invite,
    parse_invite,
    static_targets,
)
from p2pchat.discovery.mdns import local_addresses, open_mdns
from p2pchat.discovery.records import Status
from p2pchat.discovery.watch import watch
from p2pchat.diskfaults import DiskHealth, DiskRecovered, DiskTrouble, disk_fault
from p2pchat.errors import ConnectionClosed, P2PChatError, ProfileError
from p2pchat.identity import decode_peer_id, fingerprint
from p2pchat.logfile import log_to_file, log_to_stream
from p2pchat.mesh.presence import MAX_STATUS_TEXT, text_problem
from p2pchat.net.server import open_secure_connection
from p2pchat.node.chat import (
    ChatEvent,
    ChatSettings,
    ContactRequest,
    MessageIn,
    Receipt,
    new_invite,
)
from p2pchat.node.node import (
    DiscoveryNote,
    EventsDropped,
    Listening,
    Node,
    NodeSettings,
    PeerConnected,
    PeerDisconnected,
    Presence,
    open_node,
)
from p2pchat.node.rooms import RoomChanged, RoomEvent, RoomGone, RoomInvited, RoomMessageIn
from p2pchat.profile import Profile, ProfileLock, open_profile, resolve_home
from p2pchat.session.core import SUPPORTED_VERSIONS
from p2pchat.store import DATABASE_FILE, Store, open_store
from p2pchat.wire.messages import MAX_PING_DATA

DEFAULT_PORT = 7483
INTERFACES_ENV = "P2PCHAT_INTERFACES"
NODE_STATE_FILE = "node.json"
UI_LOG_FILE = "p2pchat.log"
GLOBAL_FLAGS = frozenset({"-v", "--verbose", "-h", "--help", "--version"})
EXIT_ERROR = 1
EXIT_USAGE = 2
STOP_FLUSH = 3.0  # seconds a stopping daemon waits for stdout to take what is left

log = logging.getLogger("p2pchat")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2pchat",
        description="A peer-to-peer messenger: no server, no account, no internet.",
    )
    parser.add_argument("--version", action="version", version=f"p2pchat {__version__}")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="profile directory (default: $P2PCHAT_HOME or the platform's data directory)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (repeat for debug)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    id_cmd = commands.add_parser("id", help="print this profile's peer id and fingerprint")
    id_cmd.add_argument("--json", action="store_true", help="print one JSON object")

    daemon = commands.add_parser("daemon", help="run a headless node")
    _add_daemon_options(daemon)

    ui = commands.add_parser(
        "ui", help="the chat window in this terminal (what plain `p2pchat` runs)"
    )
    _add_ui_options(ui)

    ping = commands.add_parser(
        "ping",
        help="measure round trips: to HOST:PORT over a session of its own, or to a peer "
        "ID through the running node",
    )
    ping.add_argument("address", metavar="HOST:PORT|ID")
    ping.add_argument("-c", "--count", type=int, default=4, help="pings to send (default 4)")
    ping.add_argument("-i", "--interval", type=float, default=0.2, help="seconds between pings")
    ping.add_argument(
        "-s", "--size", type=int, default=0, help="payload bytes per ping (at most 1024)"
    )
    ping.add_argument("--expect", metavar="PEER_ID", help="refuse any other identity")
    ping.add_argument("--json", action="store_true", help="print one JSON object")

    invite = commands.add_parser("invite", help="print an invite code others can connect with")
    invite.add_argument("--json", action="store_true", help="print one JSON object")
    _add_discovery_options(invite)

    doctor = commands.add_parser(
        "doctor", help="check interfaces, multicast and the node, and say what to do"
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    _add_discovery_options(doctor)

    connect = commands.add_parser(
        "connect", help="handshake with a peer by invite code or HOST:PORT and remember it"
    )
    connect.add_argument("target", metavar="CODE|HOST:PORT")
    connect.add_argument("--json", action="store_true", help="print one JSON object")

    peers = commands.add_parser("peers", help="list the peers mDNS shows, verifying each")
    peers.add_argument(
        "--wait", type=float, default=3.0, metavar="SECONDS", help="how long to listen (default 3)"
    )
    peers.add_argument("--json", action="store_true", help="print one JSON array")
    _add_discovery_options(peers)

    contacts = commands.add_parser("contacts", help="list and manage contacts and requests")
    contact_commands = contacts.add_subparsers(dest="contacts_command", metavar="ACTION")
    listing = contact_commands.add_parser("list", help="list contacts (the default)")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    adding = contact_commands.add_parser("add", help="add a contact by peer id")
    adding.add_argument("peer", metavar="ID")
    adding.add_argument("--nick", default="", help="your name for this contact")
    for action, text in (
        ("accept", "accept a contact request"),
        ("block", "refuse this id: no connection, no messages, nothing relayed"),
        ("unblock", "stop refusing this id"),
    ):
        contact_commands.add_parser(action, help=text).add_argument("peer", metavar="ID")
    requests = contact_commands.add_parser("requests", help="list pending contact requests")
    requests.add_argument("--json", action="store_true", help="print one JSON array")
    contacts.set_defaults(json=False)  # plain `p2pchat contacts` lists them

    send = commands.add_parser(
        "send",
        help="send a message (exit 0: delivered, 3: queued for later)",
        description="Send a message through the running node, or start one for as long as it "
        "takes. Exits 0 once delivered, 3 if it is queued for later (the recipient is away), "
        "1 with a reason otherwise.",
    )
    send.add_argument("peer", metavar="ID")
    send.add_argument("text", metavar="TEXT")
    send.add_argument(
        "--wait", type=float, default=10.0, metavar="SECONDS",
        help="how long to wait for delivery (default 10)",
    )  # fmt: skip
    send.add_argument("--json", action="store_true", help="print one JSON object")
    _add_node_options(send)

    history = commands.add_parser("history", help="show a conversation")
    history.add_argument("peer", metavar="ID")
    history.add_argument("--limit", type=int, default=50, help="messages to show (default 50)")
    history.add_argument("--json", action="store_true", help="print one JSON array")
    return parser


def _add_daemon_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"address to listen on (default: all interfaces, port {DEFAULT_PORT} "
        "or a free one if taken)",
    )
    parser.add_argument("--nick", help="set this profile's nick")
    parser.add_argument(
        "--status",
        choices=[status.value for status in Status],
        default=Status.AVAILABLE.value,
        help="presence to announce (default avail)",
    )
    parser.add_argument(
        "--status-text",
        default="",
        metavar="TEXT",
        help=f"a short line shown with your status (at most {MAX_STATUS_TEXT} characters)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print events as JSON lines and read JSON commands on stdin (docs/api.md)",
    )
    parser.add_argument(
        "--no-relay",
        action="store_true",
        help="do not keep messages for other peers (your own still travel through relays)",
    )
    _add_node_options(parser)


def _add_ui_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nick", help="your nickname (asked on the first run otherwise)")
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"address to listen on (default: all interfaces, port {DEFAULT_PORT} or a free one)",
    )
    parser.add_argument(
        "--no-relay", action="store_true", help="do not keep messages for other peers"
    )
    _add_node_options(parser)


def _add_node_options(parser: argparse.ArgumentParser) -> None:
    _add_discovery_options(parser)
    parser.add_argument(
        "--no-mdns", action="store_true", help="announce nothing and browse nothing on mDNS"
    )
    parser.add_argument(
        "--peer",
        dest="peer_address",
        metavar="HOST:PORT|CODE",
        action="append",
        help="also dial this address or invite code at start (repeatable); static peers "
        'can also be listed in the profile\'s config.json as "peers"',
    )
    parser.add_argument(
        "--no-announce-nick",
        action="store_true",
        help="announce without nick and status (peers learn them only after connecting)",
    )
    parser.add_argument(
        "--contacts-only",
        action="store_true",
        help="talk to contacts only: refuse strangers' connections, dial no stranger, "
        "relay nothing for them; invite codes still work (config.json: "
        '"contacts_only": true)',
    )


def _add_discovery_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interface",
        metavar="IP",
        action="append",
        type=_ipv4_interface,
        help="use mDNS only on the interface with this address (repeatable; "
        "default: all; 127.0.0.1 for nodes on one machine)",
    )


def _with_default_command(argv: list[str]) -> list[str]:
    """Plain `p2pchat [--home DIR] [--nick NAME ...]` means `p2pchat ... ui ...`."""
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--home":
            index += 2
        elif word.startswith("--home=") or word in GLOBAL_FLAGS or re.fullmatch(r"-v+", word):
            index += 1
        else:
            break
    if index < len(argv) and (argv[index] in HANDLERS or argv[index] in ("-h", "--help")):
        return argv
    if any(word in ("-h", "--help", "--version") for word in argv[:index]):
        return argv
    return [*argv[:index], "ui", *argv[index:]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_with_default_command(list(sys.argv[1:] if argv is None else argv)))
    # One per process: the log, the profile, the store and the address book report
    # a full or failing disk to it; a node turns that into events (p2pchat.diskfaults).
    args.disk = DiskHealth()
    log_to_stream(
        [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)], sys.stderr, args.disk
    )
    try:
        profile = open_profile(resolve_home(args.home))
        profile.health = args.disk
        return HANDLERS[args.command](profile, args)
    except P2PChatError as error:
        print(f"p2pchat: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


# ------------------------------------------------------------------------- id


def cmd_id(profile: Profile, args: argparse.Namespace) -> int:
    identity = profile.identity
    if args.json:
        _print_json(
            {"id": identity.peer_id, "fingerprint": identity.fingerprint, "nick": profile.nick}
        )
    else:
        print(f"peer id:     {identity.peer_id}")
        print(f"fingerprint: {identity.fingerprint}")
        print(f"nick:        {profile.nick}")
        print(f"profile:     {profile.home}")
    return 0


# --------------------------------------------------------------------- daemon


def cmd_daemon(profile: Profile, args: argparse.Namespace) -> int:
    if args.nick is not None:
        _set_nick(profile, args.nick)
    if args.listen:
        try:
            host, port = parse_host_port(args.listen)
        except ValueError as error:
            print(f"p2pchat: --listen: {error}", file=sys.stderr)
            return EXIT_USAGE
        fallback = False
    else:
        host, port, fallback = "0.0.0.0", DEFAULT_PORT, True
    problem = text_problem(profile.nick, args.status_text)
    if problem:
        print(f"p2pchat: --status-text: {problem}", file=sys.stderr)
        return EXIT_USAGE
    interfaces = _interfaces(args.interface)
    try:
        args.static_targets = static_targets(profile.config.get("peers"), args.peer_address)
    except ValueError as error:
        print(f"p2pchat: --peer / config.json peers: {error}", file=sys.stderr)
        return EXIT_USAGE
    with ProfileLock(profile.home), _open_store(profile) as store:
        return trio.run(_run_daemon, profile, store, host, port, fallback, args, interfaces)


def _set_nick(profile: Profile, nick: str) -> None:
    """--nick: a bad nick is an error; a full disk only keeps it from being saved (the
    node runs with it all the same)."""
    try:
        profile.set_nick(nick)
    except ProfileError as error:
        if disk_fault(error) is None:
            raise
        print(f"p2pchat: {error}; running as {profile.nick!r} all the same", file=sys.stderr)


def _ipv4_interface(value: str) -> str:
    """argparse type for --interface: the IPv4 address of a local interface."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IP address") from None
    if address.version != 4:
        raise argparse.ArgumentTypeError(f"{value}: only IPv4 interfaces are supported for now")
    return value


def _interfaces(values: list[str] | None) -> list[str] | None:
    """The ``--interface`` addresses, else ``$P2PCHAT_INTERFACES`` (comma-separated)."""
    if values:
        return values
    from_env = [v.strip() for v in os.environ.get(INTERFACES_ENV, "").split(",") if v.strip()]
    try:
        return [_ipv4_interface(value) for value in from_env] or None
    except argparse.ArgumentTypeError as error:
        raise ProfileError(f"{INTERFACES_ENV}: {error}") from None


def _node_settings(
    profile: Profile,
    store: Store,
    args: argparse.Namespace,
    host: str,
    port: int,
    interfaces: list[str] | None,
) -> NodeSettings:
    return NodeSettings(
        nick=profile.nick,
        status=getattr(args, "status", Status.AVAILABLE.value),
        status_text=getattr(args, "status_text", ""),
        host=host,
        port=port,
        mdns=not args.no_mdns,
        announce_nick=not args.no_announce_nick,
        interfaces=interfaces,
        static=args.static_targets,
        known_peers=KnownPeers(profile.home / KNOWN_FILE, health=getattr(args, "disk", None)),
        store=store,
        chat=ChatSettings(relay=RelayLimits(enabled=not getattr(args, "no_relay", False))),
        disk=getattr(args, "disk", None),
        contacts_only=_contacts_only(profile, args),
    )


def _contacts_only(profile: Profile, args: argparse.Namespace) -> bool:
    """--contacts-only, or "contacts_only": true in config.json (either turns it on)."""
    return bool(getattr(args, "contacts_only", False)) or profile.flag("contacts_only")


async def _run_daemon(
    profile: Profile,
    store: Store,
    host: str,
    port: int,
    may_fall_back: bool,
    args: argparse.Namespace,
    interfaces: list[str] | None,
) -> int:
    out = _EventPrinter(_stdout_fd(), as_json=args.json)
    try:
        async with trio.open_nursery() as printing:
            printing.start_soon(out.output.run)
            code = await _run_daemon_printing(
                profile, store, host, port, may_fall_back, args, interfaces, out
            )
            if code == 0:
                out.event("stopped", "stopped")
            # Whatever waits is written before the end, unless nobody reads stdout.
            with trio.move_on_after(STOP_FLUSH):
                await out.output.flush()
            printing.cancel_scope.cancel()
    finally:
        out.output.close()
    return code


async def _run_daemon_printing(
    profile: Profile,
    store: Store,
    host: str,
    port: int,
    may_fall_back: bool,
    args: argparse.Namespace,
    interfaces: list[str] | None,
    out: _EventPrinter,
) -> int:
    settings = _node_settings(profile, store, args, host, port, interfaces)
    # Signals are caught from the very start. A signal ends the event loop rather than
    # cancelling the node, so the node can still announce its leave and say goodbye.
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, signals, stop)
            try:
                await _run_node(profile, settings, interfaces, out, stop, args.json)
            except OSError as error:
                if not may_fall_back:
                    where = format_host_port(host, port)
                    print(f"p2pchat: cannot listen on {where}: {error.strerror}", file=sys.stderr)
                    nursery.cancel_scope.cancel()
                    return EXIT_ERROR
                print(
                    f"p2pchat: port {port} is taken ({error.strerror}); listening on a free "
                    "port instead",
                    file=sys.stderr,
                )
                settings.port = 0
                await _run_node(profile, settings, interfaces, out, stop, args.json)
            nursery.cancel_scope.cancel()
    return 0


def _stdout_fd() -> int | None:
    """Our own copy of stdout's descriptor (None if the daemon was started without one:
    fd 1 may then be a file the daemon opened itself)."""
    try:
        return os.dup(sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):
        return None


async def _run_node(
    profile: Profile,
    settings: NodeSettings,
    interfaces: list[str] | None,
    out: _EventPrinter,
    stop: trio.Event,
    read_stdin: bool,
) -> None:
    identity = profile.identity
    assert settings.store is not None
    async with open_node(identity, settings) as node, trio.open_nursery() as tasks:
        handler = ApiHandler(
            identity, settings.store, node, on_quit=stop.set, on_nick=profile.set_nick
        )
        # The socket first: a program that sees "listening" may use it at once.
        await tasks.start(serve_control, profile.home, handler)
        tasks.start_soon(_print_events, node, profile, interfaces, out, handler)
        if read_stdin:
            tasks.start_soon(_serve_stdin, handler, out)
        await stop.wait()
        tasks.cancel_scope.cancel()


async def _serve_stdin(handler: ApiHandler, out: _EventPrinter) -> None:
    """JSON commands on stdin, answers on stdout. End of input leaves the node running:
    a daemon started with </dev/null is still a daemon; {"cmd": "quit"} stops it."""
    try:
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    except (OSError, ValueError, AttributeError):
        return  # no stdin at all
    async with stdin:
        await answer_lines(read_lines(stdin), handler, out.json)


async def _print_events(
    node: Node,
    profile: Profile,
    interfaces: list[str] | None,
    out: _EventPrinter,
    handler: ApiHandler,
) -> None:
    identity = profile.identity
    unwritten: int | None = None  # the port, while node.json could not be written
    async for event in node.events:
        handler.observe(event)
        if isinstance(event, EventsDropped):
            out.event("dropped", _dropped_text(event.count), count=event.count)
        elif isinstance(event, Listening):
            port = parse_host_port(event.addresses[0])[1]
            contacts_only = node.settings.contacts_only
            if not _write_node_state(profile, port, interfaces, node.disk, contacts_only):
                unwritten = port
            out.event(
                "listening",
                f"listening on {', '.join(event.addresses)}",
                addresses=list(event.addresses),
                id=identity.peer_id,
                fingerprint=identity.fingerprint,
                nick=profile.nick,
                api=API_VERSION,
                contacts_only=contacts_only,
            )
            if not out.as_json:
                mode = "  (contacts only)" if contacts_only else ""
                out.text(
                    f"peer id: {identity.peer_id}  fingerprint: {identity.fingerprint}  "
                    f"nick: {profile.nick}{mode}"
                )
        elif isinstance(event, PeerConnected):
            out.event(
                "connected",
                f"connected: {event.peer_id[:12]}… at {event.address}",
                id=event.peer_id,
                address=event.address,
            )
        elif isinstance(event, PeerDisconnected):
            out.event(
                "disconnected",
                f"disconnected: {event.peer_id[:12]}… ({event.reason})",
                id=event.peer_id,
                reason=event.reason,
            )
        elif isinstance(event, Presence) and not event.is_self:
            text = f" — {event.status_text}" if event.status_text else ""
            out.event(
                "presence",
                f"presence: {event.nick or '(no nick)'} ({event.peer_id[:12]}…) is "
                f"{event.status}{text}",
                id=event.peer_id,
                nick=event.nick,
                status=event.status,
                status_text=event.status_text,
                state=event.state,
                proven=event.proven,
            )
        elif isinstance(event, DiscoveryNote):
            out.event(event.name, event.text, **event.fields)
        elif isinstance(event, MessageIn | Receipt | ContactRequest):
            _print_chat_event(node, event, out)
        elif isinstance(event, RoomMessageIn | RoomInvited | RoomChanged | RoomGone):
            _print_room_event(node, event, out)
        elif isinstance(event, DiskTrouble):
            # An error nobody's command caused: no "cmd", a "code" to act on (docs/api.md).
            out.event("error", f"error: {event.text}", error=event.text, code=event.code,
                      file=event.file)  # fmt: skip
        elif isinstance(event, DiskRecovered):
            out.event("recovered", f"recovered: {event.file} can be written again",
                      file=event.file)  # fmt: skip
            if unwritten is not None and _write_node_state(
                profile, unwritten, interfaces, node.disk, node.settings.contacts_only
            ):
                unwritten = None


def _print_chat_event(node: Node, event: ChatEvent, out: _EventPrinter) -> None:
    nick = _nick(node, event.peer_id)
    shown = nick or event.peer_id[:12] + "…"
    if isinstance(event, MessageIn):
        waits = " (waiting in requests)" if event.request else ""
        out.event(
            "message",
            f"message from {shown}: {event.text}{waits}",
            **{"from": event.peer_id},
            nick=nick,
            msg_id=event.msg_id,
            text=event.text,
            time=event.time,
            clock=event.clock,
            request=event.request,
            relayed=event.relayed,
        )
    elif isinstance(event, Receipt):
        out.event(
            "receipt",
            f"message {event.msg_id[:8]} to {shown}: {event.state}",
            to=event.peer_id,
            msg_id=event.msg_id,
            state=event.state,
        )
    else:
        out.event(
            "request",
            f"contact request from {shown} ({event.peer_id}); accept with: "
            f"p2pchat contacts accept {event.peer_id}",
            **{"from": event.peer_id},
            nick=event.nick,
            address=event.address,
            text=event.text,
        )


def _print_room_event(node: Node, event: RoomEvent, out: _EventPrinter) -> None:
    room = node.rooms.rooms.get(bytes.fromhex(event.room_id)) if node.rooms else None
    called = room.name if room else event.room_id[:8]
    if isinstance(event, RoomMessageIn):
        nick = _nick(node, event.author)
        shown = "me" if event.own else nick or event.author[:12] + "…"
        out.event(
            "room_message",
            f"[{called}] {shown}: {event.text}",
            room=event.room_id,
            msg_id=event.msg_id,
            **{"from": event.author},
            nick=nick,
            text=event.text,
            time=event.time,
            clock=event.clock,
            own=event.own,
        )
    elif isinstance(event, RoomInvited):
        nick = _nick(node, event.inviter)
        out.event(
            "room_invite",
            f'invitation to room "{event.name}" ({event.room_id}) from '
            f"{nick or event.inviter[:12] + '…'}",
            room=event.room_id,
            name=event.name,
            **{"from": event.inviter},
            nick=nick,
        )
    elif isinstance(event, RoomChanged):
        out.event(
            "room_changed",
            f'room "{event.name}" ({event.room_id}): epoch {event.epoch}, '
            f"members: {len(event.members)}",
            room=event.room_id,
            name=event.name,
            epoch=event.epoch,
            members=list(event.members),
        )
    else:
        how = "you left" if event.reason == "left" else "you were removed"
        out.event(
            "room_gone",
            f"room {event.room_id}: {how}",
            room=event.room_id,
            reason=event.reason,
        )


def _nick(node: Node, peer_id: str) -> str:
    """The contact's name, else the presence nick, else ""."""
    contact = node.store.contact(decode_peer_id(peer_id)) if node.store else None
    presence = node.presence_of(peer_id)
    return (contact.name if contact else "") or (presence.nick if presence else "")


async def _stop_on_signal(signals: AsyncIterator[int], stop: trio.Event) -> None:
    async for _ in signals:
        stop.set()
        return


class _EventPrinter:
    """Events and answers as lines on stdout (JSON or text), through a LineOutput: a
    reader that does not keep up loses the oldest lines and finds a "dropped" line."""

    def __init__(self, fd: int | None, *, as_json: bool) -> None:
        self.as_json = as_json
        self.output = LineOutput(fd, dropped_line=self._dropped_line)

    def event(self, name: str, line: str, /, **fields: Any) -> None:
        count = fields["count"] if name == "dropped" else 1  # an upstream gap stays counted
        if self.as_json:
            self.output.write(encode_event({"event": name, **fields}), count=count)
        else:
            self.text(line, count=count)

    def json(self, answer: dict[str, Any]) -> None:
        """An API answer: as it is in JSON mode, as a readable line otherwise."""
        if self.as_json:
            self.output.write(encode_event(answer))
        else:
            self.text(json.dumps(answer, ensure_ascii=False))

    def text(self, line: str, *, count: int = 1) -> None:
        # Text from the network may not be encodable here: replaced, never fatal.
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        self.output.write((line + "\n").encode(encoding, "replace"), count=count)

    def _dropped_line(self, count: int) -> bytes:
        if self.as_json:
            return encode_event({"event": "dropped", "count": count})
        return (_dropped_text(count) + "\n").encode()


def _dropped_text(count: int) -> str:
    return f"(dropped {count} event(s): they were not read fast enough)"


# ----------------------------------------------------------------------- ping


def cmd_ping(profile: Profile, args: argparse.Namespace) -> int:
    if _is_peer_id(args.address):
        return _ping_through_node(profile, args)
    try:
        host, port = parse_host_port(args.address)
        expected = decode_peer_id(args.expect) if args.expect else None
    except ValueError as error:
        print(f"p2pchat: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.count < 1 or not 0 <= args.size <= MAX_PING_DATA or args.interval < 0:
        print(
            f"p2pchat: --count must be at least 1, --size from 0 to {MAX_PING_DATA}, "
            "--interval not negative",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return trio.run(_run_ping, profile, host, port, expected, args)
    except OSError as error:
        print(f"p2pchat: cannot reach {args.address}: {error.strerror or error}", file=sys.stderr)
    except trio.TooSlowError:
        print(f"p2pchat: cannot reach {args.address}: timed out", file=sys.stderr)
    except ConnectionClosed as closed:
        print(f"p2pchat: {args.address}: {closed}", file=sys.stderr)
    return EXIT_ERROR


def _is_peer_id(text: str) -> bool:
    try:
        decode_peer_id(text)
    except ValueError:
        return False
    return True


def _ping_through_node(profile: Profile, args: argparse.Namespace) -> int:
    """`p2pchat ping ID`: the running node pings over its own session with the peer
    (dialling it if needed), rather than a second session of the same identity."""
    if not 1 <= args.count <= MAX_PINGS or not 0 <= args.size <= MAX_PING_DATA:
        print(f"p2pchat: by peer id, --count takes 1 to {MAX_PINGS} and --size 0 to "
              f"{MAX_PING_DATA}", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    command = {"cmd": "ping", "id": args.address, "count": args.count, "size": args.size}
    answer = trio.run(call_control, profile.home, command)
    if answer is None:
        print("p2pchat: no node runs for this profile: ping by HOST:PORT, or start "
              "p2pchat daemon", file=sys.stderr)  # fmt: skip
        return EXIT_ERROR
    if answer["event"] == "error":
        return _fail(answer)
    if args.json:
        _print_json({k: v for k, v in answer.items() if k not in ("event", "tag")})
        return 0
    for sequence, rtt in enumerate(answer["rtt_ms"], 1):
        print(f"pong {sequence}: time={rtt:.3f} ms")
    print(f"{len(answer['rtt_ms'])} pings: min/avg/max = {answer['min_ms']}/"
          f"{answer['avg_ms']}/{answer['max_ms']} ms")  # fmt: skip
    return 0


async def _run_ping(
    profile: Profile, host: str, port: int, expected: bytes | None, args: argparse.Namespace
) -> int:
    address = format_host_port(host, port)
    async with open_secure_connection(
        host, port, profile.identity, expected_peer=expected
    ) as connection:
        if not args.json:
            print(
                f"connected to {connection.peer_id} ({fingerprint(connection.peer_key)}) "
                f"at {address}, protocol v{connection.version}",
                flush=True,
            )
        rtts: list[float] = []
        payload = bytes(args.size)
        for sequence in range(args.count):
            if sequence:
                await trio.sleep(args.interval)
            rtt_ms = await connection.ping(payload) * 1000
            rtts.append(rtt_ms)
            if not args.json:
                print(f"pong {sequence + 1}: time={rtt_ms:.3f} ms", flush=True)
        summary = {
            "id": connection.peer_id,
            "fingerprint": fingerprint(connection.peer_key),
            "address": address,
            "version": connection.version,
            "rtt_ms": [round(rtt, 3) for rtt in rtts],
            "min_ms": round(min(rtts), 3),
            "avg_ms": round(statistics.fmean(rtts), 3),
            "max_ms": round(max(rtts), 3),
        }
    if args.json:
        _print_json(summary)
    else:
        print(
            f"{len(rtts)} pings: min/avg/max = {summary['min_ms']}/{summary['avg_ms']}/"
            f"{summary['max_ms']} ms"
        )
    return 0


def _write_node_state(
    profile: Profile,
    port: int,
    interfaces: list[str] | None,
    health: DiskHealth,
    contacts_only: bool = False,
) -> bool:
    """Where the running node listens and in which mode, for `p2pchat invite` and
    `doctor` run beside it. Only a convenience: if the disk refuses it (False), the node
    runs on, and it is written again once the disk takes writes."""
    path = profile.home / NODE_STATE_FILE
    tmp = path.with_suffix(".tmp")
    state = {
        "pid": os.getpid(),
        "port": port,
        "interfaces": interfaces,
        "contacts_only": contacts_only,
    }
    try:
        tmp.write_text(json.dumps(state) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if health.failed(str(path), error) is None:
            log.warning("cannot write %s: %s", path, error)
        return False
    health.ok(str(path))
    return True


# --------------------------------------------------------------- invite, connect


def cmd_invite(profile: Profile, args: argparse.Namespace) -> int:
    """The running node makes the code (its real addresses, a fresh token); with no node
    running, the token is stored here and the port is the last node's, or a guess."""
    chosen = _interfaces(args.interface)
    answer = trio.run(call_control, profile.home, {"cmd": "invite"})
    if answer is not None:
        if answer["event"] == "error":
            return _fail(answer)
        code, addresses = answer["invite"], list(answer["addresses"])
        if chosen:  # only the addresses on the interfaces asked for
            kept = [a for a in addresses if parse_host_port(a)[0] in chosen]
            if not kept:
                print(f"p2pchat: the node listens on none of {', '.join(chosen)} "
                      f"(it listens on {', '.join(addresses)})", file=sys.stderr)  # fmt: skip
                return EXIT_ERROR
            target = parse_invite(code)[0]
            code = make_invite(profile.identity.peer_id, kept, target.nick, target.invite)
            addresses = kept
        expires = int(answer["expires"])
    else:
        try:
            state = json.loads((profile.home / NODE_STATE_FILE).read_text(encoding="utf-8"))
            port, interfaces = int(state["port"]), state.get("interfaces")
        except (OSError, ValueError, KeyError, TypeError):
            port, interfaces = DEFAULT_PORT, None
            print(f"p2pchat: no node has run with this profile yet; assuming port {port}",
                  file=sys.stderr)  # fmt: skip
        addresses = [format_host_port(h, port) for h in local_addresses(chosen or interfaces)]
        with ProfileLock(profile.home), _open_store(profile) as store:
            token, expires = new_invite(store)
        code = make_invite(profile.identity.peer_id, addresses, profile.nick, token)
    if args.json:
        _print_json({"invite": code, "id": profile.identity.peer_id, "addresses": addresses,
                     "expires": expires})  # fmt: skip
    else:
        print(code)
    return 0


def cmd_connect(profile: Profile, args: argparse.Namespace) -> int:
    """Through the running node if there is one (it joins the peer at once); otherwise a
    handshake of our own, remembered for the node's next start."""
    try:
        targets = static_targets(None, [args.target])
    except ValueError as error:
        print(f"p2pchat: {error}", file=sys.stderr)
        return EXIT_USAGE
    answer = trio.run(call_control, profile.home, {"cmd": "connect", "target": args.target})
    if answer is not None:
        return _print_connected(answer, args.json)
    known = KnownPeers(profile.home / KNOWN_FILE)
    results: list[dict[str, Any]] = []

    def record(name: str, text: str, **fields: Any) -> None:
        results.append({"event": name, **fields})
        if not args.json:
            print(text)

    trio.run(dial_all, targets, profile.identity, record, known.remember)
    verified = [r for r in results if r["event"] == "verified"]
    contact = None
    if verified and verified[0].get("via") == "invite":
        # We used this identity's code on purpose: it is a contact now (as the node does).
        contact = verified[0]
        with ProfileLock(profile.home), _open_store(profile) as store:
            store.add_contact(decode_peer_id(contact["id"]), nick=contact["nick"] or "",
                              now=time.time_ns() // 1_000_000)  # fmt: skip
    if args.json:
        _print_json((verified or results or [{}])[0])
    if verified:
        if contact is not None and not args.json:
            print(f"{contact['nick'] or contact['id'][:12] + '…'} is now a contact")
        if known.unsaved:
            print(f"p2pchat: verified, but {known.path} could not be saved (is the disk "
                  "full?): it is not remembered", file=sys.stderr)  # fmt: skip
        elif not args.json:
            print("remembered: the node will reconnect to it at start")
        return 0
    return EXIT_ERROR


def _print_connected(answer: dict[str, Any], as_json: bool) -> int:
    if answer["event"] == "error":
        return _fail(answer)
    if as_json:
        _print_json({k: v for k, v in answer.items() if k not in ("event", "tag")})
    elif answer["state"] == "verified":
        print(f"verified: {answer['id']} at {answer['address']}")
        if answer["contact"]:
            print("it is a contact: the node keeps in touch with it")
    else:
        where = f" at {answer['address']}" if answer.get("address") else ""
        print(f"{answer['state']}: {answer.get('id') or ''}{where}: {answer['detail']}")
    return 0 if answer["state"] == "verified" else EXIT_ERROR


def cmd_doctor(profile: Profile, args: argparse.Namespace) -> int:
    chosen = _interfaces(args.interface)
    report = trio.run(run_checks, profile.home, chosen)
    if args.json:
        _print_json({
            "healthy": report.healthy,
            "findings": [vars(finding) for finding in report.findings],
        })  # fmt: skip
    else:
        for finding in report.findings:
            print(f"{'ok  ' if finding.ok else 'FAIL'} {finding.check}: {finding.detail}")
            if finding.advice:
                print(f"     -> {finding.advice}")
        print("all good" if report.healthy else "some checks failed: see the advice above")
    return 0 if report.healthy else EXIT_ERROR


# ---------------------------------------------------------------------- peers


def cmd_peers(profile: Profile, args: argparse.Namespace) -> int:
    interfaces = _interfaces(args.interface)
    if not 0 <= args.wait <= 3600:
        print("p2pchat: --wait takes 0 to 3600 seconds", file=sys.stderr)
        return EXIT_USAGE
    found = trio.run(_collect_peers, profile, args.wait, interfaces)
    if args.json:
        _print_json(found)
    elif not found:
        print(
            f"no peers seen in {args.wait:g} s. If you expected some: they may be on "
            "another network segment, or multicast may be blocked here (Wi-Fi client "
            "isolation, VPN); use an invite code or --peer HOST:PORT."
        )
    else:
        for peer in found:
            mark = "verified" if peer["verified"] else "unverified"
            nick = peer["nick"] or "(no nick)"
            print(
                f"{nick:<20} {peer['status'] or '-':<6} {mark:<10} {peer['id']}  "
                f"{', '.join(peer['addresses'])}"
            )
    return 0


async def _collect_peers(
    profile: Profile, wait: float, interfaces: list[str] | None
) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def record(name: str, text: str, **fields: Any) -> None:
        if name in ("discovered", "updated", "verified"):
            verified = fields["verified"] or found.get(fields["id"], {}).get("verified", False)
            found[fields["id"]] = {**fields, "verified": verified}
        elif name in ("gone", "spoof"):
            found.pop(fields["id"], None)

    async with (
        open_mdns(
            own_peer_id=profile.identity.peer_id,
            supported_versions=SUPPORTED_VERSIONS,
            interfaces=interfaces,
        ) as mdns,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(partial(watch, mdns, profile.identity, record, announcement=None))
        await trio.sleep(wait)
        nursery.cancel_scope.cancel()
    return sorted(found.values(), key=lambda peer: (peer["nick"] or "", peer["id"]))


def _print_json(value: Any, stream: TextIO | None = None) -> None:
    print(json.dumps(value, separators=(",", ":")), file=stream or sys.stdout, flush=True)


# ------------------------------------------------------- contacts, send, history

EXIT_QUEUED = 3
READ_ONLY = frozenset({"contacts", "requests", "history"})


def _local_call(profile: Profile, command: dict[str, Any]) -> dict[str, Any]:
    """Run one API command: through the profile's running node if there is one, else
    straight on the message store."""
    answer = trio.run(call_control, profile.home, command)
    if answer is not None:
        return answer
    # No node answers. Reading the store beside a node is safe; a change is made only
    # while we hold the profile lock, so no running node misses it.
    lock = contextlib.nullcontext() if command["cmd"] in READ_ONLY else ProfileLock(profile.home)
    with lock, _open_store(profile) as store:
        handler = ApiHandler(profile.identity, store)
        return trio.run(handler.handle, command)


def _open_store(profile: Profile) -> Store:
    """The profile's message store; config.json "full_sync": true trades speed for
    surviving power cuts too (docs/storage.md)."""
    return open_store(
        profile.home / DATABASE_FILE, full_sync=profile.config.get("full_sync") is True
    )


def _fail(answer: dict[str, Any]) -> int:
    print(f"p2pchat: {answer.get('error', 'failed')}", file=sys.stderr)
    return EXIT_ERROR


def cmd_contacts(profile: Profile, args: argparse.Namespace) -> int:
    action = args.contacts_command or "list"
    if action in ("list", "requests"):
        answer = _local_call(profile, {"cmd": "contacts" if action == "list" else "requests"})
        if answer["event"] == "error":
            return _fail(answer)
        rows = answer["contacts" if action == "list" else "requests"]
        if args.json:
            _print_json(rows)
        elif not rows:
            print("no contacts yet: p2pchat contacts add ID" if action == "list" else
                  "no pending requests")  # fmt: skip
        elif action == "list":
            for row in rows:
                marks = " ".join(
                    mark
                    for mark, on in (("verified", row["verified"]), ("blocked", row["blocked"]))
                    if on
                )
                print(f"{row['name'] or '(no name)':<20} {row['status']:<8} {row['id']} {marks}")
        else:
            for row in rows:
                print(f"{row['nick'] or '(no nick)':<20} {row['messages']} message(s)  {row['id']}")
        return 0
    command: dict[str, Any] = {"cmd": "add_contact" if action == "add" else action, "id": args.peer}
    if action == "add":
        command["nick"] = args.nick
    answer = _local_call(profile, command)
    if answer["event"] == "error":
        return _fail(answer)
    if action in ("add", "accept"):
        contact = answer["contact"]
        print(f"contact: {contact['name'] or '(no name)'} {contact['id']}")
    else:
        print(f"{action}ed: {answer['id']}")
    return 0


def cmd_history(profile: Profile, args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 10_000:
        print("p2pchat: --limit takes 1 to 10000", file=sys.stderr)
        return EXIT_USAGE
    answer = _local_call(profile, {"cmd": "history", "with": args.peer, "limit": args.limit})
    if answer["event"] == "error":
        return _fail(answer)
    messages = answer["messages"]
    if args.json:
        _print_json(messages)
        return 0
    name = answer.get("name") or args.peer[:8]
    width = max(2, len(name))
    for message in messages:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(message["time"] / 1000))
        who = "me" if message["outgoing"] else name
        mark = f"  [{message['state']}]" if message["outgoing"] else ""
        print(f"{when} {who:<{width}} {message['text']}{mark}")
    if not messages:
        print("no messages with this peer yet")
    return 0


def cmd_send(profile: Profile, args: argparse.Namespace) -> int:
    if not 0 <= args.wait <= 600:
        print("p2pchat: --wait takes 0 to 600 seconds", file=sys.stderr)
        return EXIT_USAGE
    command = {"cmd": "send", "to": args.peer, "text": args.text, "wait": args.wait}
    answer = trio.run(call_control, profile.home, command)
    if answer is None:
        try:
            args.static_targets = static_targets(profile.config.get("peers"), args.peer_address)
        except ValueError as error:
            print(f"p2pchat: --peer / config.json peers: {error}", file=sys.stderr)
            return EXIT_USAGE
        interfaces = _interfaces(args.interface)
        with ProfileLock(profile.home), _open_store(profile) as store:
            settings = _node_settings(profile, store, args, "0.0.0.0", 0, interfaces)
            answer = trio.run(_send_with_own_node, profile, settings, command)
    if answer["event"] == "error":
        return _fail(answer)
    delivered = answer["state"] in ("delivered", "read")
    if args.json:
        _print_json(answer)
    elif delivered:
        print(f"delivered ({answer['msg_id']})")
    elif answer.get("relays"):
        relays = answer["relays"]
        print(
            f"queued ({answer['msg_id']}): the recipient is away; a sealed copy waits with "
            f"{relays} other peer{'s' if relays > 1 else ''}, to be delivered when the "
            "recipient is back"
        )
    else:
        print(
            f"queued ({answer['msg_id']}): the recipient did not answer within {args.wait:g} s "
            "and no other peer took a copy; the message stays in the outbox and goes out "
            "while a node of this profile runs (p2pchat daemon) and the recipient is reachable"
        )
    return 0 if delivered else EXIT_QUEUED


async def _send_with_own_node(
    profile: Profile, settings: NodeSettings, command: dict[str, Any]
) -> dict[str, Any]:
    assert settings.store is not None
    async with open_node(profile.identity, settings) as node, trio.open_nursery() as tasks:
        handler = ApiHandler(profile.identity, settings.store, node)

        async def observe() -> None:
            async for event in node.events:
                handler.observe(event)

        tasks.start_soon(observe)
        answer = await handler.handle(command)
        if answer["event"] == "send" and answer["state"] not in ("delivered", "read"):
            # Give relays a moment to take a copy before this short-lived node leaves.
            with trio.move_on_after(2):
                while node.store and node.store.outbox(decode_peer_id(command["to"])):
                    item = node.store.outbox(decode_peer_id(command["to"]))[0]
                    if item.relays:
                        break
                    await trio.sleep(0.1)
        tasks.cancel_scope.cancel()
    return answer


# ------------------------------------------------------------------------- ui


def cmd_ui(profile: Profile, args: argparse.Namespace) -> int:
    first_run = "nick" not in profile.config
    if args.nick is not None:
        try:
            _set_nick(profile, args.nick)
        except ProfileError as error:
            print(f"p2pchat: --nick: {error}", file=sys.stderr)
            return EXIT_USAGE
        first_run = False
    if args.listen:
        try:
            host, port = parse_host_port(args.listen)
        except ValueError as error:
            print(f"p2pchat: --listen: {error}", file=sys.stderr)
            return EXIT_USAGE
    else:
        host, port = "0.0.0.0", DEFAULT_PORT
    try:
        args.static_targets = static_targets(profile.config.get("peers"), args.peer_address)
    except ValueError as error:
        print(f"p2pchat: --peer / config.json peers: {error}", file=sys.stderr)
        return EXIT_USAGE
    interfaces = _interfaces(args.interface)
    from p2pchat.ui.app import ChatApp  # Textual loads only for the UI

    # The screen is the terminal's: log lines go to a file in the profile instead (and
    # a full disk there must not print tracebacks over the chat).
    log_to_file(profile.home / UI_LOG_FILE, getattr(args, "disk", None))

    with ProfileLock(profile.home), _open_store(profile) as store:
        if not args.listen and _port_taken(host, port):
            port = 0  # another program has the default port: any free one will do
        settings = _node_settings(profile, store, args, host, port, interfaces)
        ChatApp(profile, settings, ask_nick=first_run).run()
    return 0


def _port_taken(host: str, port: int) -> bool:
    import socket

    with socket.socket() as probe:
        # As the real listener does: a port in TIME_WAIT from our last run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


HANDLERS: dict[str, Callable[[Profile, argparse.Namespace], int]] = {
    "id": cmd_id,
    "daemon": cmd_daemon,
    "ping": cmd_ping,
    "peers": cmd_peers,
    "invite": cmd_invite,
    "connect": cmd_connect,
    "doctor": cmd_doctor,
    "contacts": cmd_contacts,
    "send": cmd_send,
    "history": cmd_history,
    "ui": cmd_ui,
}
