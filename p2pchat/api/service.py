"""What a running node offers the other programs of its profile, whichever front end
runs it (``p2pchat daemon`` or the chat window): the API on the control socket (with
the node's events for the clients that subscribe), and ``node.json`` saying where the
node listens and in which mode.

Both front ends build one :class:`NodeService` beside their node, start :meth:`serve`
in their nursery and pass every node event through :meth:`observe`, so a one-shot
command (``send``, ``history``, ``invite``, ``doctor``, ...) finds the node the same way
whichever front end is open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import trio

from p2pchat.addresses import parse_host_port
from p2pchat.api.control import Subscribers, serve_control
from p2pchat.api.events import EventCollector, print_event
from p2pchat.api.handler import ApiHandler
from p2pchat.diskfaults import DiskHealth, DiskRecovered
from p2pchat.node.events import Listening, NodeEvent
from p2pchat.node.node import Node
from p2pchat.profile import Profile

NODE_STATE_FILE = "node.json"

log = logging.getLogger("p2pchat")


class NodeService:
    """The control socket and ``node.json`` of one running node."""

    def __init__(
        self,
        profile: Profile,
        node: Node,
        *,
        on_quit: Callable[[], None],
        on_nick: Callable[[str], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """``on_change``: an API command may have changed what the front end shows."""
        store = node.settings.store
        assert store is not None, "the API needs the node's message store"
        self.profile = profile
        self.node = node
        self.handler = ApiHandler(
            profile.identity,
            store,
            node,
            on_quit=on_quit,
            on_nick=on_nick or profile.set_nick,
            on_change=on_change,
        )
        self._unwritten: int | None = None  # the port, while node.json could not be written
        self.subscribers = Subscribers()

    async def serve(
        self, *, task_status: trio.TaskStatus[Path | None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve the control socket until cancelled (started once it accepts)."""
        await serve_control(
            self.profile.home, self.handler, subscribers=self.subscribers, task_status=task_status
        )

    def observe(self, event: NodeEvent) -> None:
        """Every node event passes here: it wakes API commands waiting for one, and
        ``node.json`` is written once the node listens (again once the disk recovers);
        control clients that subscribed get it as the daemon's stdout shows it."""
        self.handler.observe(event)
        if self.subscribers and not isinstance(event, Listening):
            self._publish(event)
        if isinstance(event, Listening):
            port = parse_host_port(event.addresses[0])[1]
            self._unwritten = None if self._write_state(port) else port
        elif (
            isinstance(event, DiskRecovered)
            and self._unwritten is not None
            and self._write_state(self._unwritten)
        ):
            self._unwritten = None

    def _publish(self, event: NodeEvent) -> None:
        collected = EventCollector()
        try:  # names come from the store: a failing disk costs subscribers one event
            print_event(self.node, event, collected)
        except Exception:
            log.exception("cannot describe %r for control-socket subscribers", event)
            return
        for line in collected.events:
            self.subscribers.publish(line)

    def _write_state(self, port: int) -> bool:
        settings = self.node.settings
        return write_node_state(
            self.profile, port, settings.interfaces, self.node.disk, settings.contacts_only
        )


def write_node_state(
    profile: Profile,
    port: int,
    interfaces: list[str] | None,
    health: DiskHealth,
    contacts_only: bool = False,
) -> bool:
    """Where the running node listens and in which mode, for `p2pchat invite` and
    `doctor` run beside it. Only a convenience: if the disk refuses it (False), the node
    runs on, and it is written again once the disk takes writes. It stays after the node
    stops (the pid tells whether it still runs): `invite` then offers the last port."""
    path = profile.home / NODE_STATE_FILE
    tmp = path.with_suffix(".tmp")
    state = {
        "pid": os.getpid(),
        "port": port,
        "interfaces": interfaces,
        "contacts_only": contacts_only,
    }
    try:
        # 0600 like every other file of the profile: it says who runs, and where.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)  # a .tmp left over from before keeps its mode
            out.write(json.dumps(state) + "\n")
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if health.failed(str(path), error) is None:
            log.warning("cannot write %s: %s", path, error)
        return False
    health.ok(str(path))
    return True
