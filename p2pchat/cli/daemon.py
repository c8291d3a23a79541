"""``p2pchat daemon``: a headless node that runs until a signal or the API's ``quit``,
prints its events on stdout (text, or JSON lines that also read commands on stdin),
serves the control socket and tells other commands in ``node.json`` where it listens.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable

import trio

from p2pchat.addresses import format_host_port
from p2pchat.api.control import FdReader, answer_lines, read_batches
from p2pchat.api.events import EventPrinter, print_event, print_listening
from p2pchat.api.handler import ApiHandler
from p2pchat.api.service import NodeService
from p2pchat.cli.common import (
    EXIT_ERROR,
    EXIT_USAGE,
    chosen_interfaces,
    listen_address,
    node_settings,
    open_profile_store,
    read_static_targets,
    set_nick,
)
from p2pchat.mesh.presence import text_problem
from p2pchat.node.events import Listening, NodeEvent
from p2pchat.node.node import Node, NodeSettings, open_node
from p2pchat.profile import Profile, ProfileLock

STOP_FLUSH = 3.0  # seconds a stopping daemon waits for stdout to take what is left

log = logging.getLogger("p2pchat")


def cmd_daemon(profile: Profile, args: argparse.Namespace) -> int:
    if args.nick is not None:
        set_nick(profile, args.nick)
    listen = listen_address(args)
    if listen is None:
        return EXIT_USAGE
    host, port, given = listen
    problem = text_problem(profile.nick, args.status_text)
    if problem:
        print(f"p2pchat: --status-text: {problem}", file=sys.stderr)
        return EXIT_USAGE
    interfaces = chosen_interfaces(args.interface)
    if not read_static_targets(profile, args):
        return EXIT_USAGE
    with ProfileLock(profile.home), open_profile_store(profile) as store:
        settings = node_settings(profile, store, args, host, port, interfaces)
        # Only the default port may be swapped for a free one: a --listen is a promise.
        return trio.run(_run_daemon, profile, settings, not given, args)


async def _run_daemon(
    profile: Profile, settings: NodeSettings, may_fall_back: bool, args: argparse.Namespace
) -> int:
    out = EventPrinter(_stdout_fd(), as_json=args.json)
    try:
        async with trio.open_nursery() as printing:
            printing.start_soon(out.output.run)
            code = await _run_daemon_printing(profile, settings, may_fall_back, args, out)
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
    settings: NodeSettings,
    may_fall_back: bool,
    args: argparse.Namespace,
    out: EventPrinter,
) -> int:
    # Signals are caught from the very start. A signal ends the event loop rather than
    # cancelling the node, so the node can still announce its leave and say goodbye.
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, signals, stop)
            try:
                await _run_node(profile, settings, out, stop, args.json)
            except OSError as error:
                if not may_fall_back:
                    where = format_host_port(settings.host, settings.port)
                    print(f"p2pchat: cannot listen on {where}: {error.strerror}", file=sys.stderr)
                    nursery.cancel_scope.cancel()
                    return EXIT_ERROR
                print(
                    f"p2pchat: port {settings.port} is taken ({error.strerror}); listening on "
                    "a free port instead",
                    file=sys.stderr,
                )
                settings.port = 0
                await _run_node(profile, settings, out, stop, args.json)
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
    out: EventPrinter,
    stop: trio.Event,
    read_stdin: bool,
) -> None:
    assert settings.store is not None
    async with open_node(profile.identity, settings) as node, trio.open_nursery() as tasks:
        service = NodeService(profile, node, on_quit=stop.set)
        # The socket first: a program that sees "listening" may use it at once.
        await tasks.start(service.serve)
        printer = _Printer(node, profile, out, service)
        tasks.start_soon(printer.run)
        if read_stdin:
            tasks.start_soon(_serve_stdin, service.handler, out, printer.answering)
        node.take_event = printer.take
        try:
            await stop.wait()
        finally:
            node.take_event = None
        tasks.cancel_scope.cancel()


async def _serve_stdin(
    handler: ApiHandler, out: EventPrinter, answering: Callable[[bool], object]
) -> None:
    """JSON commands on stdin, answers on stdout. End of input leaves the node running:
    a daemon started with </dev/null is still a daemon; {"cmd": "quit"} stops it."""
    try:
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    except (OSError, ValueError, AttributeError):
        return  # no stdin at all
    async with stdin:
        try:
            await answer_lines(read_batches(FdReader(stdin)), handler, out.json, answering)
        except trio.BrokenResourceError as error:  # EIO from a terminal we left, say
            log.warning(
                "stdin cannot be read (%s); the node goes on, commands reach it through "
                "its control socket",
                error.__cause__ or error,
            )


class _Printer:
    """The node's events on stdout. Printing never blocks (a line goes straight into the
    pipe, or waits in the output's own queue), so the node hands an event over in the
    step that made it (``take``), without a task step of the printer's own, except
    while stdin's commands are being answered: their answers come first, as they always
    did, and the events they caused wait in the node's feed for ``run``."""

    def __init__(
        self, node: Node, profile: Profile, out: EventPrinter, service: NodeService
    ) -> None:
        self._node = node
        self._profile = profile
        self._out = out
        self._service = service
        self._answering = False

    def answering(self, busy: bool) -> None:
        self._answering = busy

    def take(self, event: NodeEvent) -> bool:
        if self._answering:
            return False
        try:
            self._show(event)
        except Exception:  # printing must never break the node step that emitted it
            log.exception("printing an event failed")
        return True

    async def run(self) -> None:
        events = self._node.events
        while True:
            # Nothing is taken out of the feed before it is printed: while anything
            # waits there, ``take`` declines, so no event can overtake another.
            await events.wait()
            # All that waits is printed in this one step: the events of one batch of
            # chat input (a message, its receipts) cost one step, not one each.
            while True:
                try:
                    event = events.receive_nowait()
                except trio.WouldBlock:
                    break
                except trio.EndOfChannel:
                    return
                self._show(event)

    def _show(self, event: NodeEvent) -> None:
        node, out = self._node, self._out
        self._service.observe(event)
        if isinstance(event, Listening):
            contacts_only = node.settings.contacts_only
            print_listening(out, event, self._profile.identity, self._profile.nick, contacts_only)
        else:
            print_event(node, event, out)


async def _stop_on_signal(signals: AsyncIterator[int], stop: trio.Event) -> None:
    async for _ in signals:
        stop.set()
        return
