"""Noticing that the machine joined or left a network: a cable plugged in, another
Wi-Fi, a VPN, or (in the lab) a link added to a namespace.

mDNS listens on the interfaces that were up when zeroconf started, and our record
names the addresses we had then: after a change both are stale, so mDNS moves to the
new set (Mdns.move, called by Dialler._follow_moves). On Linux the kernel tells us at
once (a netlink socket subscribed to link and IPv4 address changes); elsewhere, or
if that socket cannot be opened, we look again every ``poll`` seconds. Either way an
idle node costs nothing on the wire, and a wake-up per ``poll`` at most.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections.abc import Callable, Iterator

import trio

log = logging.getLogger("p2pchat.discovery")

# Linux rtnetlink multicast groups (linux/rtnetlink.h).
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10

POLL_SECONDS = 5.0  # without netlink: how often the addresses are looked at again
NETLINK_POLL_SECONDS = 60.0  # with it: only a safety net for a missed message
SETTLE_SECONDS = 0.25  # one change is a burst (link up, address, route): wait it out


@contextlib.contextmanager
def kernel_news() -> Iterator[socket.socket | None]:
    """A socket the kernel writes to on every link or IPv4 address change, or None
    where there is no such thing (not Linux, or refused)."""
    family = getattr(socket, "AF_NETLINK", None)
    protocol = getattr(socket, "NETLINK_ROUTE", None)
    if family is None or protocol is None:
        yield None
        return
    try:
        sock = socket.socket(family, socket.SOCK_RAW, protocol)
    except OSError as error:
        log.debug("no netlink socket (%s): looking for new addresses every %g s", error,
                  POLL_SECONDS)  # fmt: skip
        yield None
        return
    with sock:
        try:
            sock.setblocking(False)
            sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR))
        except OSError as error:
            log.debug("netlink bind refused (%s): polling instead", error)
            yield None
            return
        yield sock


def _drain(sock: socket.socket) -> None:
    """Read whatever the kernel queued: only that something changed matters."""
    while True:
        try:
            if not sock.recv(65536):
                return
        except BlockingIOError:
            return
        except OSError as error:
            if error.errno != errno.ENOBUFS:  # more news than it held: still "changed"
                return


async def next_addresses(
    current: list[str],
    look: Callable[[], list[str]],
    *,
    news: socket.socket | None = None,
    poll: float = POLL_SECONDS,
    settle: float = SETTLE_SECONDS,
) -> list[str]:
    """Wait until ``look()`` gives a set of addresses other than ``current``; return it.
    ``news``: a socket that becomes readable when something may have changed (looked
    at after ``settle`` seconds of quiet); without it, ``look`` runs every ``poll``."""
    baseline = sorted(current)
    while True:
        if news is None:
            await trio.sleep(poll)
        else:
            with trio.move_on_after(poll):
                await trio.lowlevel.wait_readable(news)
                _drain(news)
                # The rest of the burst: an address comes a moment after its link.
                while True:
                    with trio.move_on_after(settle) as quiet:
                        await trio.lowlevel.wait_readable(news)
                        _drain(news)
                    if quiet.cancelled_caught:
                        break
        found = look()
        if sorted(found) != baseline:
            return found


async def wait_for_new_addresses(current: list[str], look: Callable[[], list[str]]) -> list[str]:
    """:func:`next_addresses` with the kernel's news where there is any."""
    with kernel_news() as news:
        poll = POLL_SECONDS if news is None else NETLINK_POLL_SECONDS
        return await next_addresses(current, look, news=news, poll=poll)
