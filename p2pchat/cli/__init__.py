"""The ``p2pchat`` command's front door: opens the log and the profile, picks the
command (plain ``p2pchat`` means ``ui``) and runs it; ``main`` stays here so
``p2pchat.cli:main`` and ``python -m p2pchat`` find it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from p2pchat.allocator import keep_freed_buffers
from p2pchat.cli.common import EXIT_ERROR
from p2pchat.cli.parser import build_parser
from p2pchat.diskfaults import DiskHealth
from p2pchat.errors import P2PChatError
from p2pchat.locking.passphrase import (
    FromDescriptor,
    FromEnvironment,
    FromKeyring,
    PassphraseSource,
    default_source,
)
from p2pchat.logfile import log_to_stream
from p2pchat.profile import Profile, open_profile, resolve_home

__all__ = ["main"]

GLOBAL_FLAGS = frozenset({"-v", "--verbose", "-h", "--help", "--version", "--passphrase-keyring"})
GLOBAL_OPTIONS = frozenset({"--home", "--passphrase-fd", "--passphrase-env"})  # take a value

Handler = Callable[[Profile, argparse.Namespace], int]

# command -> the module that runs it, imported only for that command: a daemon runs for
# days, and every module it never uses (the network tools' statistics, the launcher, the
# one-shot client commands) would cost resident memory all that time.
HANDLERS: dict[str, str] = {
    "id": "p2pchat.cli.client",
    "passphrase": "p2pchat.cli.passphrase",
    "daemon": "p2pchat.cli.daemon",
    "ping": "p2pchat.cli.network",
    "peers": "p2pchat.cli.network",
    "invite": "p2pchat.cli.network",
    "connect": "p2pchat.cli.network",
    "doctor": "p2pchat.cli.network",
    "contacts": "p2pchat.cli.client",
    "send": "p2pchat.cli.client",
    "send-file": "p2pchat.cli.files",
    "files": "p2pchat.cli.files",
    "history": "p2pchat.cli.client",
    "search": "p2pchat.cli.client",
    "ui": "p2pchat.cli.launcher",
    "network": "p2pchat.cli.networks",
}


def handler(command: str) -> Handler:
    """The function that runs ``command`` (``cmd_<command>`` of its module)."""
    name = f"cmd_{command.replace('-', '_')}"
    run: Handler = getattr(importlib.import_module(HANDLERS[command]), name)
    return run


def _with_default_command(argv: list[str]) -> list[str]:
    """Plain `p2pchat [--home DIR] [--nick NAME ...]` means `p2pchat ... ui ...`."""
    index = 0
    while index < len(argv):
        word = argv[index]
        if word in GLOBAL_OPTIONS:
            index += 2
        elif (
            word.split("=", 1)[0] in GLOBAL_OPTIONS
            or word in GLOBAL_FLAGS
            or re.fullmatch(r"-v+", word)
        ):
            index += 1
        else:
            break
    if index < len(argv) and (argv[index] in HANDLERS or argv[index] in ("-h", "--help")):
        return argv
    if index < len(argv) and not argv[index].startswith("-"):
        return argv  # a word that is no command: argparse says so, not the chat window
    if any(word in ("-h", "--help", "--version") for word in argv[:index]):
        return argv
    return [*argv[:index], "ui", *argv[index:]]


def passphrase_source(args: argparse.Namespace, home: Path) -> PassphraseSource:
    """Where a locked profile's passphrase comes from: the option given, else the
    terminal if there is one."""
    if args.passphrase_fd is not None:
        return FromDescriptor(args.passphrase_fd)
    if args.passphrase_env is not None:
        return FromEnvironment(args.passphrase_env)
    if args.passphrase_keyring:
        return FromKeyring(home)
    return default_source()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_with_default_command(list(sys.argv[1:] if argv is None else argv)))
    # One per process: the log, the profile, the store and the address book report
    # a full or failing disk to it; a node turns that into events (p2pchat.diskfaults).
    args.disk = DiskHealth()
    keep_freed_buffers()
    log_to_stream(
        [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)], sys.stderr, args.disk
    )
    try:
        profile = open_profile(resolve_home(args.home))
        profile.health = args.disk
        profile.passphrase = passphrase_source(args, profile.home)
        return handler(args.command)(profile, args)
    except P2PChatError as error:
        print(f"p2pchat: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`p2pchat history … | head`): nothing more to say to it,
        # and no traceback for it. Python would complain again flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
