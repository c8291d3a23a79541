"""`p2pchat network`: the private networks this profile belongs to (docs/protocol.md
§17). Each is a key shared by invite code; members find, reach and understand only
each other under it. A running node is told of a change at once."""

from __future__ import annotations

import argparse
import sys

import segno
import trio

from p2pchat.api.control import call_control
from p2pchat.cli.common import EXIT_ERROR, EXIT_USAGE, open_profile_store, print_json
from p2pchat.commands import CommandError, Commands
from p2pchat.networks.keys import network_name_problem, parse_network_code
from p2pchat.profile import Profile


def _tell_node(profile: Profile, *, left: bool = False) -> str:
    """Have a running node read the networks again; what to say about it."""
    answer = trio.run(call_control, profile.home, {"cmd": "networks_reload"})
    if answer is None:
        return "nothing runs now" if left else "p2pchat uses it from its next start"
    if answer.get("event") == "error":
        return f"the running p2pchat did not take it ({answer.get('error')}): restart it"
    return "the running p2pchat has stopped using it" if left else "the running p2pchat uses it now"


def _typing_problem(args: argparse.Namespace, action: str) -> str | None:
    """What is wrong with a name or code as typed (exit 2), before anything is opened."""
    if action == "create":
        return network_name_problem(args.name)
    if action == "join":
        try:
            parse_network_code(args.code)
        except ValueError as error:
            return str(error)
        return network_name_problem(args.name) if args.name else None
    return None


def cmd_network(profile: Profile, args: argparse.Namespace) -> int:
    action = args.network_command or "list"
    problem = _typing_problem(args, action)
    if problem:
        print(f"p2pchat: {problem}", file=sys.stderr)
        return EXIT_USAGE
    store = open_profile_store(profile)
    commands = Commands(profile.identity, store)  # the running node is told below
    try:
        if action == "list":
            networks = commands.networks()
            if args.json:
                print_json([{"name": n.name, "id": n.network_id.hex()} for n in networks])
            elif not networks:
                print("no private networks: p2pchat network create NAME, or join CODE")
            for network in networks if not args.json else []:
                print(f"{network.name:<32} {network.network_id.hex()}")
        elif action == "create":
            network = commands.create_network(args.name)
            print(f"created the private network {network.name!r}; {_tell_node(profile)}.")
            print("Give this code to each member, in person or over a channel you trust:")
            print(commands.network_code(network.name))
        elif action == "invite":
            code = commands.network_code(args.name)
            if args.qr:
                # Light modules in reverse video: on a dark terminal the code reads dark
                # on light, as scanners want (on a light one it is inverted, which many
                # phone scanners still read); level M, never Micro QR.
                segno.make(code, error="m", micro=False).terminal(out=sys.stdout)
            print(code)
        elif action == "join":
            joined = commands.join_network(args.code, args.name)
            if joined is None:
                print("already a member of that network")
            else:
                print(f"joined the private network {joined.name!r}; {_tell_node(profile)}.")
        elif action == "leave":
            commands.leave_network(args.name)
            print(f"left {args.name!r}: its key is deleted; {_tell_node(profile, left=True)}.")
        return 0
    except CommandError as error:
        print(f"p2pchat: {error}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        store.close()
