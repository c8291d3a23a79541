"""What several commands share, so each reads it the same way: exit codes, the
meaning of the flags two or more of them take (``--interface``, ``--nick``, the node
options), the profile's store and JSON printing.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from p2pchat.addresses import parse_host_port
from p2pchat.api.service import NODE_STATE_FILE as NODE_STATE_FILE
from p2pchat.chat.relay import RelayLimits
from p2pchat.discovery.known import KNOWN_FILE, KnownPeers, static_targets
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import ProfileError
from p2pchat.node.chat import ChatSettings
from p2pchat.node.files import FileSettings, OfferLimits
from p2pchat.node.node import NodeSettings
from p2pchat.profile import Profile
from p2pchat.relock import finish_relock
from p2pchat.store import DATABASE_FILE, Store, open_store
from p2pchat.tor.process import TorSettings
from p2pchat.wire.messages import Status

DEFAULT_PORT = 7483
INTERFACES_ENV = "P2PCHAT_INTERFACES"
EXIT_ERROR = 1
EXIT_USAGE = 2


def set_nick(profile: Profile, nick: str) -> None:
    """--nick: a bad nick is an error; a full disk only keeps it from being saved (the
    node runs with it all the same)."""
    try:
        profile.set_nick(nick)
    except ProfileError as error:
        if disk_fault(error) is None:
            raise
        print(f"p2pchat: {error}; running as {profile.nick!r} all the same", file=sys.stderr)


def ipv4_interface(value: str) -> str:
    """argparse type for --interface: the IPv4 address of a local interface."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IP address") from None
    if address.version != 4:
        raise argparse.ArgumentTypeError(f"{value}: only IPv4 interfaces are supported for now")
    return value


def chosen_interfaces(values: list[str] | None) -> list[str] | None:
    """The ``--interface`` addresses, else ``$P2PCHAT_INTERFACES`` (comma-separated)."""
    if values:
        return values
    from_env = [v.strip() for v in os.environ.get(INTERFACES_ENV, "").split(",") if v.strip()]
    try:
        return [ipv4_interface(value) for value in from_env] or None
    except argparse.ArgumentTypeError as error:
        raise ProfileError(f"{INTERFACES_ENV}: {error}") from None


def node_settings(
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
        private_discovery=not args.public_discovery
        and (args.private_discovery or profile.flag("private_discovery")),
        interfaces=interfaces,
        static=args.static_targets,
        known_peers=KnownPeers(
            profile.home / KNOWN_FILE,
            health=getattr(args, "disk", None),
            key=profile.database_key,
        ),
        store=store,
        chat=ChatSettings(relay=RelayLimits(enabled=not getattr(args, "no_relay", False))),
        files=FileSettings(
            downloads=profile.downloads(getattr(args, "downloads", None)),
            offers=OfferLimits(
                auto_accept=profile.auto_accept_files(getattr(args, "auto_accept_files", None))
            ),
        ),
        disk=getattr(args, "disk", None),
        contacts_only=_contacts_only(profile, args),
        xmpp_link_local=bool(getattr(args, "xmpp_link_local", False))
        or profile.flag("xmpp_link_local"),
        xmpp_name=getattr(args, "xmpp_name", "") or "",
        tor=tor_settings(profile, args),
    )


def tor_settings(profile: Profile, args: argparse.Namespace) -> TorSettings | None:
    """--tor or "tor": true in config.json: our own tor, in the profile's ``tor``
    folder, with the lines of --torrc-extra (or "torrc_extra") added to its torrc."""
    if not (getattr(args, "tor", False) or profile.flag("tor")):
        return None
    extra_file = getattr(args, "torrc_extra", "") or str(profile.config.get("torrc_extra", ""))
    extra = ""
    if extra_file:
        try:
            extra = Path(extra_file).expanduser().read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise ProfileError(f"--torrc-extra {extra_file}: {error}") from None
    return TorSettings(profile.home / "tor", extra=extra)


def _contacts_only(profile: Profile, args: argparse.Namespace) -> bool:
    """--contacts-only, or "contacts_only": true in config.json (either turns it on)."""
    return bool(getattr(args, "contacts_only", False)) or profile.flag("contacts_only")


def listen_address(args: argparse.Namespace) -> tuple[str, int, bool] | None:
    """--listen as (host, port, given); without it the default port on every interface.
    None (after saying why on stderr) if it is not a HOST:PORT."""
    if not args.listen:
        return "0.0.0.0", DEFAULT_PORT, False
    try:
        host, port = parse_host_port(args.listen)
    except ValueError as error:
        print(f"p2pchat: --listen: {error}", file=sys.stderr)
        return None
    return host, port, True


def read_static_targets(profile: Profile, args: argparse.Namespace) -> bool:
    """Set ``args.static_targets`` from --peer and config.json's peers; False (after
    saying why on stderr) if one of them is not a peer address."""
    try:
        args.static_targets = static_targets(profile.config.get("peers"), args.peer_address)
    except ValueError as error:
        print(f"p2pchat: --peer / config.json peers: {error}", file=sys.stderr)
        return False
    return True


def open_profile_store(profile: Profile) -> Store:
    """The profile's message store (a locked profile asks for its passphrase here);
    config.json "full_sync": true trades speed for surviving power cuts too
    (docs/storage.md)."""
    # A change of the profile's lock that stopped half-way is finished or undone.
    finish_relock(profile.home, profile.database_key)
    return open_store(
        profile.home / DATABASE_FILE,
        full_sync=profile.config.get("full_sync") is True,
        key=profile.database_key,
    )


def fail(answer: dict[str, Any]) -> int:
    print(f"p2pchat: {answer.get('error', 'failed')}", file=sys.stderr)
    return EXIT_ERROR


def print_json(value: Any, stream: TextIO | None = None) -> None:
    print(json.dumps(value, separators=(",", ":")), file=stream or sys.stdout, flush=True)
