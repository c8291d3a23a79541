"""The ``p2pchat`` command: profiles, identity, a headless node and ping."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import statistics
import sys
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any, TextIO

import trio

from p2pchat import __version__
from p2pchat.addresses import format_host_port, parse_host_port
from p2pchat.discovery.dial import dial_all
from p2pchat.discovery.doctor import run_checks
from p2pchat.discovery.known import (
    KNOWN_FILE,
    KnownPeers,
    make_invite,
    static_targets,
)
from p2pchat.discovery.mdns import local_addresses, open_mdns
from p2pchat.discovery.records import Status
from p2pchat.discovery.watch import watch
from p2pchat.errors import ConnectionClosed, P2PChatError, ProfileError
from p2pchat.identity import decode_peer_id, fingerprint
from p2pchat.mesh.presence import MAX_STATUS_TEXT, text_problem
from p2pchat.net.node import (
    DiscoveryNote,
    Listening,
    Node,
    NodeSettings,
    PeerConnected,
    PeerDisconnected,
    Presence,
    open_node,
)
from p2pchat.net.server import open_secure_connection
from p2pchat.profile import Profile, ProfileLock, open_profile, resolve_home
from p2pchat.session.core import SUPPORTED_VERSIONS

DEFAULT_PORT = 7483
INTERFACES_ENV = "P2PCHAT_INTERFACES"
NODE_STATE_FILE = "node.json"
EXIT_ERROR = 1
EXIT_USAGE = 2

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

    ping = commands.add_parser("ping", help="connect to a node and measure round trips")
    ping.add_argument("address", metavar="HOST:PORT")
    ping.add_argument("-c", "--count", type=int, default=4, help="pings to send (default 4)")
    ping.add_argument("-i", "--interval", type=float, default=0.2, help="seconds between pings")
    ping.add_argument("-s", "--size", type=int, default=0, help="payload bytes per ping")
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
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    _add_discovery_options(parser)
    parser.add_argument(
        "--no-mdns", action="store_true", help="announce nothing and browse nothing on mDNS"
    )
    parser.add_argument(
        "--peer",
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


def _add_discovery_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interface",
        metavar="IP",
        action="append",
        type=_ipv4_interface,
        help="use mDNS only on the interface with this address (repeatable; "
        "default: all; 127.0.0.1 for nodes on one machine)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:  # until the UI exists, plain `p2pchat` runs a node
        args = parser.parse_args([*(argv or sys.argv[1:]), "daemon"])
    commands = {
        "id": cmd_id,
        "daemon": cmd_daemon,
        "ping": cmd_ping,
        "peers": cmd_peers,
        "invite": cmd_invite,
        "connect": cmd_connect,
        "doctor": cmd_doctor,
    }
    try:
        return commands[args.command](open_profile(resolve_home(args.home)), args)
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
        profile.set_nick(args.nick)
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
        args.static_targets = static_targets(profile.config.get("peers"), args.peer)
    except ValueError as error:
        print(f"p2pchat: --peer / config.json peers: {error}", file=sys.stderr)
        return EXIT_USAGE
    with ProfileLock(profile.home):
        return trio.run(_run_daemon, profile, host, port, fallback, args, interfaces)


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


async def _run_daemon(
    profile: Profile,
    host: str,
    port: int,
    may_fall_back: bool,
    args: argparse.Namespace,
    interfaces: list[str] | None,
) -> int:
    out = _EventPrinter(sys.stdout, as_json=args.json)
    settings = NodeSettings(
        nick=profile.nick,
        status=args.status,
        status_text=args.status_text,
        host=host,
        port=port,
        mdns=not args.no_mdns,
        announce_nick=not args.no_announce_nick,
        interfaces=interfaces,
        static=args.static_targets,
        known_peers=KnownPeers(profile.home / KNOWN_FILE),
    )
    # Signals are caught from the very start. A signal ends the event loop rather than
    # cancelling the node, so the node can still announce its leave and say goodbye.
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, signals, stop)
            try:
                await _run_node(profile, settings, interfaces, out, stop)
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
                await _run_node(profile, settings, interfaces, out, stop)
            nursery.cancel_scope.cancel()
    out.event("stopped", "stopped")
    return 0


async def _run_node(
    profile: Profile,
    settings: NodeSettings,
    interfaces: list[str] | None,
    out: _EventPrinter,
    stop: trio.Event,
) -> None:
    identity = profile.identity
    async with open_node(identity, settings) as node, trio.open_nursery() as printing:
        printing.start_soon(_print_events, node, profile, interfaces, out)
        await stop.wait()
        printing.cancel_scope.cancel()


async def _print_events(
    node: Node, profile: Profile, interfaces: list[str] | None, out: _EventPrinter
) -> None:
    identity = profile.identity
    async for event in node.events:
        if isinstance(event, Listening):
            port = parse_host_port(event.addresses[0])[1]
            _write_node_state(profile, port, interfaces)
            out.event(
                "listening",
                f"listening on {', '.join(event.addresses)}",
                addresses=list(event.addresses),
                id=identity.peer_id,
                fingerprint=identity.fingerprint,
                nick=profile.nick,
            )
            if not out.as_json:
                print(
                    f"peer id: {identity.peer_id}  fingerprint: {identity.fingerprint}  "
                    f"nick: {profile.nick}",
                    flush=True,
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
            )
        elif isinstance(event, DiscoveryNote):
            out.event(event.name, event.text, **event.fields)


async def _stop_on_signal(signals: AsyncIterator[int], stop: trio.Event) -> None:
    async for _ in signals:
        stop.set()
        return


class _EventPrinter:
    def __init__(self, stream: TextIO, *, as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json

    def event(self, name: str, text: str, **fields: Any) -> None:
        if self.as_json:
            _print_json({"event": name, **fields}, self.stream)
        else:
            print(text, file=self.stream, flush=True)


# ----------------------------------------------------------------------- ping


def cmd_ping(profile: Profile, args: argparse.Namespace) -> int:
    try:
        host, port = parse_host_port(args.address)
        expected = decode_peer_id(args.expect) if args.expect else None
    except ValueError as error:
        print(f"p2pchat: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.count < 1 or args.size < 0 or args.interval < 0:
        print(
            "p2pchat: --count must be at least 1; --size and --interval not negative",
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


def _write_node_state(profile: Profile, port: int, interfaces: list[str] | None) -> None:
    """Where the running node listens, for `p2pchat invite` run beside it."""
    state = {"pid": os.getpid(), "port": port, "interfaces": interfaces}
    (profile.home / NODE_STATE_FILE).write_text(json.dumps(state) + "\n", encoding="utf-8")


# --------------------------------------------------------------- invite, connect


def cmd_invite(profile: Profile, args: argparse.Namespace) -> int:
    try:
        state = json.loads((profile.home / NODE_STATE_FILE).read_text(encoding="utf-8"))
        port, interfaces = int(state["port"]), state.get("interfaces")
    except (OSError, ValueError, KeyError, TypeError):
        port, interfaces = DEFAULT_PORT, None
        print(f"p2pchat: no node has run with this profile yet; assuming port {port}",
              file=sys.stderr)  # fmt: skip
    chosen = _interfaces(args.interface) or interfaces
    addresses = [format_host_port(host, port) for host in local_addresses(chosen)]
    code = make_invite(profile.identity.peer_id, addresses, profile.nick)
    if args.json:
        _print_json({"invite": code, "id": profile.identity.peer_id, "addresses": addresses})
    else:
        print(code)
    return 0


def cmd_connect(profile: Profile, args: argparse.Namespace) -> int:
    try:
        targets = static_targets(None, [args.target])
    except ValueError as error:
        print(f"p2pchat: {error}", file=sys.stderr)
        return EXIT_USAGE
    known = KnownPeers(profile.home / KNOWN_FILE)
    results: list[dict[str, Any]] = []

    def record(name: str, text: str, **fields: Any) -> None:
        results.append({"event": name, **fields})
        if not args.json:
            print(text)

    trio.run(dial_all, targets, profile.identity, record, known.remember)
    verified = [r for r in results if r["event"] == "verified"]
    if args.json:
        _print_json((verified or results or [{}])[0])
    if verified:
        if not args.json:
            print("remembered: the node will reconnect to it at start")
        return 0
    return EXIT_ERROR


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
