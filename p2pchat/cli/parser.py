"""The command line's grammar: every command, its flags and their help texts (what a
flag means once parsed belongs to the command that reads it, or to ``common``).
"""

from __future__ import annotations

import argparse

from p2pchat import __version__
from p2pchat.cli.common import DEFAULT_PORT, ipv4_interface
from p2pchat.wire.messages import MAX_STATUS_TEXT_CHARS, Status


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
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument(
        "--passphrase-fd",
        type=int,
        metavar="N",
        help="a locked profile's passphrase: read it from file descriptor N (e.g. 3<file)",
    )
    secret.add_argument(
        "--passphrase-env",
        metavar="NAME",
        help="a locked profile's passphrase: the value of the environment variable NAME",
    )
    secret.add_argument(
        "--passphrase-keyring",
        action="store_true",
        help="a locked profile's passphrase: from the system keyring (saved with "
        "`passphrase set --remember`)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    passphrase = commands.add_parser(
        "passphrase",
        help="lock this profile with a passphrase, change it, or take it off",
        description="A locked profile keeps its identity key and its whole message "
        "database encrypted on disk; it asks for the passphrase when it starts. "
        "If the passphrase is forgotten, nothing can be recovered.",
    )
    passphrase.add_argument("action", choices=("set", "change", "remove", "status"))
    passphrase.add_argument(
        "--new-passphrase-fd",
        type=int,
        metavar="N",
        help="read the new passphrase from file descriptor N instead of asking",
    )
    passphrase.add_argument(
        "--new-passphrase-env",
        metavar="NAME",
        help="the new passphrase is the value of the environment variable NAME",
    )
    passphrase.add_argument(
        "--remember",
        action="store_true",
        help="also save the new passphrase in the system keyring (for --passphrase-keyring)",
    )

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
        "(ID or a contact's name) through the running node",
    )
    ping.add_argument("address", metavar="HOST:PORT|ID|NAME")
    ping.add_argument("-c", "--count", type=int, default=4, help="pings to send (default 4)")
    ping.add_argument("-i", "--interval", type=float, default=0.2, help="seconds between pings")
    ping.add_argument(
        "-s", "--size", type=int, default=0, help="payload bytes per ping (at most 1024)"
    )
    ping.add_argument(
        "--expect", metavar="ID|NAME", help="refuse any other identity (a peer id or contact)"
    )
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

    network = commands.add_parser(
        "network",
        help="private networks: create one, give its code, join, list, leave",
        description="A private network is a key shared by invite code: its members find, "
        "reach and understand only each other under it, and anyone without the key sees "
        "nothing it can name. A running p2pchat is told of a change at once.",
    )
    network_commands = network.add_subparsers(dest="network_command", metavar="ACTION")
    network_commands.add_parser("create", help="make a new network").add_argument("name")
    network_invite = network_commands.add_parser("invite", help="print a network's code")
    network_invite.add_argument("name")
    network_invite.add_argument(
        "--qr", action="store_true", help="also as a QR code, for a phone to scan and pass on"
    )
    joining = network_commands.add_parser("join", help="join a network by its code")
    joining.add_argument("code", metavar="CODE")
    joining.add_argument("--name", default="", help="your name for it (default: the code's)")
    network_commands.add_parser("leave", help="leave a network").add_argument("name")
    network_list = network_commands.add_parser("list", help="list networks (the default)")
    network_list.add_argument("--json", action="store_true", help="print one JSON array")
    network.add_argument("--json", action="store_true", help="print one JSON array")

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
        contact_commands.add_parser(action, help=text).add_argument("peer", metavar="ID|NAME")
    requests = contact_commands.add_parser("requests", help="list pending contact requests")
    requests.add_argument("--json", action="store_true", help="print one JSON array")
    # Plain `p2pchat contacts [--json]` lists them, as `contacts list [--json]` does.
    contacts.add_argument("--json", action="store_true", help="print one JSON array")

    send = commands.add_parser(
        "send",
        help="send a message (exit 0: delivered, 3: queued for later)",
        description="Send a message through the running node, or start one for as long as it "
        "takes. Exits 0 once delivered, 3 if it is queued for later (the recipient is away), "
        "1 with a reason otherwise.",
    )
    send.add_argument("peer", metavar="ID|NAME", help="a peer id, or a contact's name")
    send.add_argument("text", metavar="TEXT")
    send.add_argument(
        "--wait", type=float, default=10.0, metavar="SECONDS",
        help="how long to wait for delivery (default 10)",
    )  # fmt: skip
    send.add_argument("--json", action="store_true", help="print one JSON object")
    _add_node_options(send)

    send_file = commands.add_parser(
        "send-file",
        help="offer a file to a person (sent once they accept), or share it with a room",
        description="Offer a file through the running node, or start one. With --wait, stay "
        "until the receiver has it all (a progress bar on a terminal) or declines; exit 0 "
        "once sent (or offered, without --wait), 1 if declined, cancelled or failed.",
    )
    send_file.add_argument(
        "peer", metavar="ID|NAME|#ROOM", help="a peer id, a contact's name, or #ROOM (a room)"
    )
    send_file.add_argument("path", metavar="PATH", help="the file")
    send_file.add_argument("--wait", action="store_true", help="stay until it is sent")
    send_file.add_argument("--json", action="store_true", help="print one JSON object")
    _add_node_options(send_file)

    files = commands.add_parser("files", help="file offers and transfers; answer an offer")
    files.add_argument("action", nargs="?", choices=["list", "accept", "decline", "cancel"])
    files.add_argument("offer", nargs="?", metavar="OFFER", help="an offer id (or its start)")
    files.add_argument("--json", action="store_true", help="print JSON")

    history = commands.add_parser("history", help="show a conversation")
    history.add_argument("peer", metavar="ID|NAME", help="a peer id, or a contact's name")
    history.add_argument("--limit", type=int, default=50, help="messages to show (default 50)")
    history.add_argument("--json", action="store_true", help="print one JSON array")

    search = commands.add_parser("search", help="find messages in all conversations")
    search.add_argument("words", metavar="WORDS", nargs="+", help="words the messages hold")
    search.add_argument("--limit", type=int, default=50, help="results to show (default 50)")
    search.add_argument("--json", action="store_true", help="print one JSON array")
    for command in [*commands.choices.values(), *contact_commands.choices.values()]:
        _accept_global_options(command)
    return parser


def _accept_global_options(command: argparse.ArgumentParser) -> None:
    """--home and -v also after the command (`p2pchat id --home DIR`), as people type
    them. SUPPRESS as the default: a value given before the command is not overwritten."""
    command.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)  # fmt: skip
    command.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)  # fmt: skip
    command.add_argument("--passphrase-fd", type=int, default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)  # fmt: skip
    command.add_argument("--passphrase-env", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    command.add_argument("--passphrase-keyring", action="store_true",
                         default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # fmt: skip


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
        help=f"a short line shown with your status (at most {MAX_STATUS_TEXT_CHARS} characters)",
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
        "--downloads",
        metavar="DIR",
        help="save received files here (default: the system's downloads folder, or "
        'DIR/downloads with --home DIR; config.json: "downloads")',
    )
    parser.add_argument(
        "--auto-accept-files",
        metavar="SIZE",
        help="accept a contact's file up to SIZE (such as 10M) without asking; a "
        'stranger\'s never (default: ask for every file; config.json: "auto_accept_files")',
    )
    parser.add_argument(
        "--no-announce-nick",
        action="store_true",
        help="announce without nick and status (peers learn them only after connecting)",
    )
    visibility = parser.add_mutually_exclusive_group()
    visibility.add_argument(
        "--private-discovery",
        action="store_true",
        help="announce a token only your contacts recognise, never your id, nick or "
        'status (the default of new profiles: "private_discovery": true in '
        "config.json); strangers see an anonymous p2pchat node and reach you only by "
        "an invite code",
    )
    visibility.add_argument(
        "--public-discovery",
        action="store_true",
        help="announce your peer id, nick and status to everyone on the network, so "
        'that people nearby can find you (this run; set "private_discovery": false '
        "in config.json to keep it)",
    )
    parser.add_argument(
        "--contacts-only",
        action="store_true",
        help="talk to contacts only: refuse strangers' connections, dial no stranger, "
        "relay nothing for them; invite codes still work (config.json: "
        '"contacts_only": true)',
    )
    parser.add_argument(
        "--xmpp-link-local",
        action="store_true",
        help="also be seen and spoken to by XMPP link-local clients on the network "
        "(Pidgin's and finch's Bonjour, Adium, Messages): UNENCRYPTED, like them; needs "
        'mDNS (config.json: "xmpp_link_local": true)',
    )
    parser.add_argument(
        "--xmpp-name",
        metavar="USER@HOST",
        default="",
        help="the name XMPP link-local clients see (default: your nick @ this host name)",
    )
    parser.add_argument(
        "--tor",
        action="store_true",
        help="reach contacts beyond the LAN through Tor: starts tor (the tor package) "
        "with this profile, publishes an onion service and puts its address in your "
        'invite codes (config.json: "tor": true)',
    )
    parser.add_argument(
        "--torrc-extra",
        metavar="FILE",
        default="",
        help="more lines for that tor's torrc: bridges, a proxy, a private test network "
        '(config.json: "torrc_extra")',
    )


def _add_discovery_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interface",
        metavar="IP",
        action="append",
        type=ipv4_interface,
        help="use mDNS only on the interface with this address (repeatable; "
        "default: all; 127.0.0.1 for nodes on one machine)",
    )
