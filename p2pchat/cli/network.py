"""The network tools (ping, invite, connect, doctor, peers): each reaches other peers
or checks that they can reach us, through the running node when one answers on the
control socket, else with a session, a store or an mDNS browser of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from typing import Any

import trio

from p2pchat.addresses import format_host_port, parse_host_port
from p2pchat.api.control import call_control
from p2pchat.api.network import MAX_PINGS
from p2pchat.chat.names import line_id
from p2pchat.cli.common import (
    DEFAULT_PORT,
    EXIT_ERROR,
    EXIT_USAGE,
    NODE_STATE_FILE,
    chosen_interfaces,
    fail,
    open_profile_store,
    print_json,
)
from p2pchat.cli.people import is_peer_id, person
from p2pchat.commands import Commands
from p2pchat.discovery.dial import dial_all
from p2pchat.discovery.known import (
    KNOWN_FILE,
    KnownPeers,
    make_invite,
    parse_invite,
    static_targets,
)
from p2pchat.discovery.link_local import LinkLocalDns, LinkLocalEvent
from p2pchat.discovery.mdns import local_addresses, open_mdns
from p2pchat.discovery.tokens import recognise
from p2pchat.discovery.watch import watch
from p2pchat.errors import ConnectionClosed, StoreError
from p2pchat.identity import decode_peer_id, fingerprint
from p2pchat.net.server import open_secure_connection
from p2pchat.node.xmpp.bridge import is_p2pchat
from p2pchat.profile import Profile, ProfileLock
from p2pchat.session.core import SUPPORTED_VERSIONS
from p2pchat.wire.messages import MAX_PING_DATA


def cmd_ping(profile: Profile, args: argparse.Namespace) -> int:
    if is_peer_id(args.address):
        return _ping_through_node(profile, args, args.address)
    if ":" not in args.address:  # not HOST:PORT, so the name of a contact
        peer = person(profile, args.address)
        return EXIT_ERROR if peer is None else _ping_through_node(profile, args, peer)
    try:
        host, port = parse_host_port(args.address)
    except ValueError as error:
        print(f"p2pchat: {error}", file=sys.stderr)
        return EXIT_USAGE
    expected = None
    if args.expect:
        expected_id = person(profile, args.expect)
        if expected_id is None:
            return EXIT_ERROR
        expected = decode_peer_id(expected_id)
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


def _ping_through_node(profile: Profile, args: argparse.Namespace, peer: str) -> int:
    """`p2pchat ping ID`: the running node pings over its own session with the peer
    (dialling it if needed), rather than a second session of the same identity."""
    if not 1 <= args.count <= MAX_PINGS or not 0 <= args.size <= MAX_PING_DATA:
        print(f"p2pchat: by peer id, --count takes 1 to {MAX_PINGS} and --size 0 to "
              f"{MAX_PING_DATA}", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    command = {"cmd": "ping", "id": peer, "count": args.count, "size": args.size}
    answer = trio.run(call_control, profile.home, command)
    if answer is None:
        print("p2pchat: no node runs for this profile: ping by HOST:PORT, or start "
              "p2pchat daemon", file=sys.stderr)  # fmt: skip
        return EXIT_ERROR
    if answer["event"] == "error":
        return fail(answer)
    if args.json:
        print_json({k: v for k, v in answer.items() if k not in ("event", "tag")})
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
        print_json(summary)
    else:
        print(
            f"{len(rtts)} pings: min/avg/max = {summary['min_ms']}/{summary['avg_ms']}/"
            f"{summary['max_ms']} ms"
        )
    return 0


def cmd_invite(profile: Profile, args: argparse.Namespace) -> int:
    """The running node makes the code (its real addresses, a fresh token); with no node
    running, the token is stored here and the port is the last node's, or a guess."""
    chosen = chosen_interfaces(args.interface)
    answer = trio.run(call_control, profile.home, {"cmd": "invite"})
    if answer is not None:
        if answer["event"] == "error":
            return fail(answer)
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
        with ProfileLock(profile.home), open_profile_store(profile) as store:
            invitation = Commands(profile.identity, store).invite_offline(addresses, profile.nick)
        code, expires = invitation.code, invitation.expires
    if args.json:
        print_json({"invite": code, "id": profile.identity.peer_id, "addresses": addresses,
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
        print(f"p2pchat: {args.target!r} is neither HOST:PORT nor an invite code "
              f"({error})", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    answer = trio.run(call_control, profile.home, {"cmd": "connect", "target": args.target})
    if answer is not None:
        return _print_connected(answer, args.json)
    known = KnownPeers(profile.home / KNOWN_FILE, key=profile.database_key)
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
        with ProfileLock(profile.home), open_profile_store(profile) as store:
            commands = Commands(profile.identity, store)
            commands.add_contact(decode_peer_id(contact["id"]), nick=contact["nick"] or "")
    if args.json:
        print_json((verified or results or [{}])[0])
    if verified:
        if contact is not None and not args.json:
            print(f"{contact['nick'] or line_id(contact['id'])} is now a contact")
        if known.unsaved:
            print(f"p2pchat: proven, but {known.path} could not be saved (is the disk "
                  "full?): it is not remembered", file=sys.stderr)  # fmt: skip
        elif not args.json:
            print("remembered: the node will reconnect to it at start")
        return 0
    return EXIT_ERROR


def _print_connected(answer: dict[str, Any], as_json: bool) -> int:
    if answer["event"] == "error":
        return fail(answer)
    if as_json:
        print_json({k: v for k, v in answer.items() if k not in ("event", "tag")})
    elif answer["state"] == "verified":
        print(f"proven: {answer['id']} at {answer['address']}")
        if answer["contact"]:
            print("it is a contact: the node keeps in touch with it")
    else:
        where = f" at {answer['address']}" if answer.get("address") else ""
        print(f"{answer['state']}: {answer.get('id') or ''}{where}: {answer['detail']}")
    return 0 if answer["state"] == "verified" else EXIT_ERROR


def cmd_doctor(profile: Profile, args: argparse.Namespace) -> int:
    chosen = chosen_interfaces(args.interface)
    ask = partial(call_control, profile.home)
    report = trio.run(partial(Commands.check_network, profile.home, chosen, ask=ask))
    if args.json:
        print_json({
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
    interfaces = chosen_interfaces(args.interface)
    if not 0 <= args.wait <= 3600:
        print("p2pchat: --wait takes 0 to 3600 seconds", file=sys.stderr)
        return EXIT_USAGE
    found, anonymous = trio.run(_collect_peers, profile, args.wait, interfaces)
    if args.json:
        print_json(found)
        return 0
    if anonymous:
        print(
            f"{anonymous} anonymous p2pchat node{'s' if anonymous > 1 else ''} (private "
            "discovery: not your contacts, or contacts that have not given you their key yet)"
        )
    if not found and not anonymous:
        print(
            f"no peers seen in {args.wait:g} s. If you expected some: they may be on "
            "another network segment, or multicast may be blocked here (Wi-Fi client "
            "isolation, VPN); use an invite code or --peer HOST:PORT."
        )
    elif found:
        for peer in found:
            # "proven": a handshake showed the id; "verified" is for compared safety numbers
            mark = "proven" if peer["verified"] else "not proven"
            if peer["protocol"] != "p2pchat":
                mark = "XMPP · NOT ENCRYPTED"
            nick = peer["nick"] or "(no nick)"
            print(
                f"{nick:<20} {peer['status'] or '-':<6} {mark:<10} {peer['id']}  "
                f"{', '.join(peer['addresses'])}"
            )
    return 0


async def _collect_peers(
    profile: Profile, wait: float, interfaces: list[str] | None
) -> tuple[list[dict[str, Any]], int]:
    """(the peers seen, and how many private records no contact's key recognised)."""
    found: dict[str, dict[str, Any]] = {}
    keys = _contacts_announce_keys(profile)

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
        mdns.recognise = lambda token: recognise(token, keys, time.time())
        await nursery.start(partial(watch, mdns, profile.identity, record, announcement=None))
        # XMPP link-local clients too (docs/protocol.md §18): listed, never dialled.
        link_local = LinkLocalDns(mdns.zeroconf, mdns.addresses, server="")
        seen_send, seen = trio.open_memory_channel[LinkLocalEvent](1024)
        await nursery.start(link_local.browse, seen_send)
        nursery.start_soon(_drain, seen)
        await trio.sleep(wait)
        nursery.cancel_scope.cancel()
        anonymous = len(mdns.anonymous)
    ours = [{**peer, "protocol": "p2pchat"} for peer in found.values()]
    # Other p2pchat nodes' bridges are those nodes again: listed once, as themselves.
    theirs = [{**peer.listed(), "verified": False} for peer in link_local.peers.values()
              if not is_p2pchat(peer)]  # fmt: skip
    return sorted(ours + theirs, key=lambda peer: (peer["nick"] or "", peer["id"])), anonymous


async def _drain(events: trio.MemoryReceiveChannel[LinkLocalEvent]) -> None:
    async for _ in events:
        pass  # the table (LinkLocalDns.peers) is what is listed


def _contacts_announce_keys(profile: Profile) -> dict[bytes, bytes]:
    """Our contacts' announce keys, to recognise their private records (none if the
    store cannot be read: the plain records are listed all the same)."""
    try:
        with open_profile_store(profile) as store:
            return store.contacts_announce_keys()
    except StoreError:
        return {}
