"""``p2pchat ui`` (and plain ``p2pchat``): turns the flags into a node's settings and
starts the Textual chat window with them; Textual is imported only when it runs, so
the other commands start without it.
"""

from __future__ import annotations

import argparse
import sys

from p2pchat.cli.common import (
    EXIT_USAGE,
    chosen_interfaces,
    listen_address,
    node_settings,
    open_profile_store,
    read_static_targets,
    set_nick,
)
from p2pchat.errors import ProfileError
from p2pchat.logfile import UI_LOG_FILE, log_to_file
from p2pchat.profile import Profile, ProfileLock


def cmd_ui(profile: Profile, args: argparse.Namespace) -> int:
    first_run = "nick" not in profile.config
    if args.nick is not None:
        try:
            set_nick(profile, args.nick)
        except ProfileError as error:
            print(f"p2pchat: --nick: {error}", file=sys.stderr)
            return EXIT_USAGE
        first_run = False
    listen = listen_address(args)
    if listen is None:
        return EXIT_USAGE
    host, port, given = listen
    if not read_static_targets(profile, args):
        return EXIT_USAGE
    interfaces = chosen_interfaces(args.interface)
    from p2pchat.ui.app import ChatApp  # Textual loads only for the UI
    from p2pchat.ui.graphics import probe

    # The screen is the terminal's: log lines go to a file in the profile instead (and
    # a full disk there must not print tracebacks over the chat).
    log_to_file(profile.home / UI_LOG_FILE, getattr(args, "disk", None))

    with ProfileLock(profile.home), open_profile_store(profile) as store:
        if not given and _port_taken(host, port):
            port = 0  # another program has the default port: any free one will do
        settings = node_settings(profile, store, args, host, port, interfaces)
        probe()  # before the window: the terminal's answers come on its input
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
