"""Thin wrappers over the Linux calls the testbed needs and Python 3.11 lacks.

TAP devices (``/dev/net/tun`` + ``TUNSETIFF``), a ``timerfd`` (nanosecond timers the
switch can wait on with epoll: Python's ``epoll.poll`` rounds its timeout up to whole
milliseconds, which would add up to 1 ms to every 1 ms link), ``setns`` (to make a socket
or write a sysctl inside a network namespace from a short-lived thread of this process),
and ``prctl(PR_SET_PDEATHSIG)`` (the switch dies with its driver). Linux only.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import struct
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def open_tap(name: str) -> int:
    """A nonblocking fd attached to a new (non-persistent) TAP device ``name``.

    The device exists as long as the fd is open: when the process holding it exits, for
    whatever reason, the kernel removes the device, wherever it has been moved.
    """
    if len(name.encode()) >= IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ - 1} bytes")
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    except BaseException:
        os.close(fd)
        raise
    return fd


class TimerFd:
    """A CLOCK_MONOTONIC timer as a file descriptor: readable once the armed time passes.

    Times are ``time.monotonic()`` seconds (the same clock).
    """

    def __init__(self) -> None:
        self.fd = _check(
            _libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), "timerfd_create"
        )
        self._spec = _Itimerspec()

    def arm_at(self, when: float) -> None:
        # An all-zero value disarms the timer; any time in the past fires at once.
        when = max(when, 1e-9)
        seconds = int(when)
        self._spec.it_value.tv_sec = seconds
        self._spec.it_value.tv_nsec = int((when - seconds) * 1e9)
        _check(
            _libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None),
            "timerfd_settime",
        )

    def consume(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)


def die_with_parent(signal_number: int) -> None:
    """Ask the kernel to send ``signal_number`` to this process when its parent exits."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal_number, 0, 0, 0), "prctl")


def _setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def in_netns(netns: str, action: Callable[[], T]) -> T:
    """Run ``action`` in a fresh thread that has entered network namespace ``netns``.

    Sockets made there stay in that namespace for their whole life; files under
    /proc/sys/net opened there are that namespace's sysctls. Blocks until done.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                results.append(action())
            finally:
                _setns(own)  # the thread ends anyway; this keeps a failure visible
        except BaseException as error:
            errors.append(error)
        finally:
            os.close(own)

    thread = threading.Thread(target=run, name=f"netns {netns}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]
