"""Work the network triggers in the application services, guarded: a failure there is
logged and must not take the node down with it."""

from __future__ import annotations

import logging
from typing import Any

from p2pchat.diskfaults import disk_fault
from p2pchat.identity import encode_peer_id

log = logging.getLogger("p2pchat.node")


def guarded(callback: Any, peer: bytes) -> None:
    """Chat work triggered by the network (a session, a presence change) touches the
    store; a store error there is logged, and must not take the node down with it. (A
    full disk is logged by the store's DiskHealth, once per interval, not here.)"""
    try:
        callback(peer)
    except Exception as error:
        if disk_fault(error) is not None:
            return
        name = getattr(callback, "__name__", None) or getattr(callback, "func", callback)
        log.exception("%s failed for %s", name, encode_peer_id(peer))
