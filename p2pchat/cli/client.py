"""The commands on one's own data (id, contacts, history, search, send): each is one API
command, answered by the profile's running node over the control socket, else by the
same API handler straight on the store (``send`` starts a short-lived node instead).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import trio

from p2pchat.api.control import call_control
from p2pchat.api.handler import ApiHandler
from p2pchat.chat.names import line_id
from p2pchat.cli.common import (
    EXIT_ERROR,
    EXIT_USAGE,
    chosen_interfaces,
    fail,
    node_settings,
    open_profile_store,
    print_json,
    read_static_targets,
)
from p2pchat.cli.people import local_call, peer_id_problem, person
from p2pchat.identity import decode_peer_id
from p2pchat.node.node import NodeSettings, open_node
from p2pchat.profile import Profile, ProfileLock

EXIT_QUEUED = 3


def cmd_id(profile: Profile, args: argparse.Namespace) -> int:
    identity = profile.identity
    if args.json:
        print_json(
            {"id": identity.peer_id, "fingerprint": identity.fingerprint, "nick": profile.nick}
        )
    else:
        print(f"peer id:     {identity.peer_id}")
        print(f"fingerprint: {identity.fingerprint}")
        print(f"nick:        {profile.nick}")
        print(f"profile:     {profile.home}")
    return 0


def cmd_contacts(profile: Profile, args: argparse.Namespace) -> int:
    action = args.contacts_command or "list"
    if action in ("list", "requests"):
        answer = local_call(profile, {"cmd": "contacts" if action == "list" else "requests"})
        if answer["event"] == "error":
            return fail(answer)
        rows = answer["contacts" if action == "list" else "requests"]
        if args.json:
            print_json(rows)
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
                print(f"{row['name'] or '(no name)':<20} {row['status']:<8} "
                      f"{reached(row):<12} {row['id']} {marks}")  # fmt: skip
        else:
            for row in rows:
                print(f"{row['nick'] or '(no nick)':<20} {row['messages']} message(s)  {row['id']}")
        return 0
    if action == "add":
        problem = peer_id_problem(args.peer)
        if problem:
            print(f"p2pchat: {problem}", file=sys.stderr)
            return EXIT_USAGE
    peer = args.peer if action == "add" else person(profile, args.peer, requests=True)
    if peer is None:
        return EXIT_ERROR
    command: dict[str, Any] = {"cmd": "add_contact" if action == "add" else action, "id": peer}
    if action == "add":
        command["nick"] = args.nick
    answer = local_call(profile, command)
    if answer["event"] == "error":
        return fail(answer)
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
    peer = person(profile, args.peer)
    if peer is None:
        return EXIT_ERROR
    answer = local_call(profile, {"cmd": "history", "with": peer, "limit": args.limit})
    if answer["event"] == "error":
        return fail(answer)
    messages = answer["messages"]
    if args.json:
        print_json(messages)
        return 0
    name = answer.get("name") or line_id(peer)
    width = max(2, len(name))
    for message in messages:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(message["time"] / 1000))
        who = "me" if message["outgoing"] else name
        mark = f"  [{message['state']}]" if message["outgoing"] else ""
        print(f"{when} {who:<{width}} {message['text']}{mark}")
    if not messages:
        print("no messages with this peer yet")
    return 0


def cmd_search(profile: Profile, args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 500:
        print("p2pchat: --limit takes 1 to 500", file=sys.stderr)
        return EXIT_USAGE
    text = " ".join(args.words)
    answer = local_call(profile, {"cmd": "search", "text": text, "limit": args.limit})
    if answer["event"] == "error":
        return fail(answer)
    results = answer["results"]
    if args.json:
        print_json(results)
        return 0
    for found in results:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(found["time"] / 1000))
        snippet = " ".join(found["snippet"].split())
        print(f"{when}  {found['conversation']}  {found['name']}: {snippet}")
    if not results:
        print(f"no message has {text!r}")
    return 0


def cmd_send(profile: Profile, args: argparse.Namespace) -> int:
    if not 0 <= args.wait <= 600:
        print("p2pchat: --wait takes 0 to 600 seconds", file=sys.stderr)
        return EXIT_USAGE
    if not read_static_targets(profile, args):  # a usage error first, whoever sends
        return EXIT_USAGE
    peer = person(profile, args.peer)
    if peer is None:
        return EXIT_ERROR
    command = {"cmd": "send", "to": peer, "text": args.text, "wait": args.wait}
    answer = trio.run(call_control, profile.home, command)
    if answer is None:
        interfaces = chosen_interfaces(args.interface)
        with ProfileLock(profile.home), open_profile_store(profile) as store:
            settings = node_settings(profile, store, args, "0.0.0.0", 0, interfaces)
            answer = trio.run(_send_with_own_node, profile, settings, command)
    if answer["event"] == "error":
        return fail(answer)
    delivered = answer["state"] in ("delivered", "read")
    if args.json:
        print_json(answer)
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


def reached(row: dict[str, Any]) -> str:
    """How a contact's session goes, and its round trip: "LAN 2 ms", "Tor 480 ms", "-"."""
    via = {"direct": "LAN", "tor": "Tor"}.get(row.get("via") or "", "")
    if not via:
        return "-"
    rtt = row.get("rtt_ms")
    return via if rtt is None else f"{via} {rtt:.0f} ms"
