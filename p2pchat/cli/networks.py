"""`p2pchat network`: the private networks this profile belongs to (docs/protocol.md
§17). Each is a key shared by invite code; members find, reach and understand only
each other under it. A running node is told of a change at once."""

from __future__ import annotations

import argparse
import os
import sys

import trio

from p2pchat.api.control import call_control
from p2pchat.cli.common import EXIT_ERROR, EXIT_USAGE, open_profile_store, print_json
from p2pchat.networks.keys import (
    NETWORK_KEY_BYTES,
    Network,
    network_code,
    network_name_problem,
    parse_network_code,
)
from p2pchat.profile import Profile
from p2pchat.wallclock import now_ms


def _tell_node(profile: Profile, *, left: bool = False) -> str:
    """Have a running node read the networks again; what to say about it."""
    answer = trio.run(call_control, profile.home, {"cmd": "networks_reload"})
    if answer is None:
        return "nothing runs now" if left else "p2pchat uses it from its next start"
    if answer.get("event") == "error":
        return f"the running p2pchat did not take it ({answer.get('error')}): restart it"
    return "the running p2pchat has stopped using it" if left else "the running p2pchat uses it now"


def _say_problem(text: str, code: int = EXIT_USAGE) -> int:
    print(f"p2pchat: {text}", file=sys.stderr)
    return code


def cmd_network(profile: Profile, args: argparse.Namespace) -> int:
    action = args.network_command or "list"
    store = open_profile_store(profile)
    try:
        if action == "list":
            networks = store.networks()
            if args.json:
                print_json([{"name": n.name, "id": n.network_id.hex()} for n in networks])
            elif not networks:
                print("no private networks: p2pchat network create NAME, or join CODE")
            for network in networks if not args.json else []:
                print(f"{network.name:<32} {network.network_id.hex()}")
            return 0
        if action == "create":
            problem = network_name_problem(args.name)
            if problem:
                return _say_problem(problem)
            network = Network(args.name, os.urandom(NETWORK_KEY_BYTES))
            try:
                store.add_network(network, now=now_ms())
            except ValueError as error:
                return _say_problem(str(error), EXIT_ERROR)
            print(f"created the private network {network.name!r}; {_tell_node(profile)}.")
            print("Give this code to each member, in person or over a channel you trust:")
            print(network_code(network))
            return 0
        if action == "invite":
            found = store.network(args.name)
            if found is None:
                return _say_problem(f"no network named {args.name!r}", EXIT_ERROR)
            print(network_code(found))
            return 0
        if action == "join":
            try:
                network = parse_network_code(args.code)
                if args.name:
                    network = Network(args.name, network.key)
            except ValueError as error:
                return _say_problem(str(error))
            try:
                added = store.add_network(network, now=now_ms())
            except ValueError as error:
                return _say_problem(str(error), EXIT_ERROR)
            if not added:
                print("already a member of that network")
            else:
                print(f"joined the private network {network.name!r}; {_tell_node(profile)}.")
            return 0
        if action == "leave":
            if not store.remove_network(args.name):
                return _say_problem(f"no network named {args.name!r}", EXIT_ERROR)
            print(f"left {args.name!r}: its key is deleted; {_tell_node(profile, left=True)}.")
            return 0
        raise AssertionError(action)
    finally:
        store.close()
