"""Our own tor: started by the node with a private data directory in the profile,
listening on loopback only (its SOCKS and control ports chosen by the kernel), owned by
us (it exits when our control connection or our process goes), and stopped with us.

:func:`run_tor` yields a :class:`RunningTor` once its control port answers; bootstrapping
goes on in tor, and :meth:`RunningTor.wait_bootstrapped` waits for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from p2pchat.tor.control import TorControl, control_port_file, open_tor_control

STARTED_WITHIN = 30.0  # s for tor to open its control port (it reads its state first)
STOPPED_WITHIN = 10.0  # s for tor to exit when asked, before it is killed
POLL = 0.05  # s between looks at tor's control-port file and bootstrap progress


class TorError(Exception):
    """Our tor could not be started or reached; ``str()`` says why and what to do."""


@dataclass
class TorSettings:
    folder: Path  # the tor's own: torrc, data, log (in the profile)
    executable: str = "tor"
    extra: str = ""  # more torrc lines (a private test network's authorities, say)


@dataclass
class RunningTor:
    control: TorControl
    socks: tuple[str, int]
    process: trio.Process
    folder: Path

    async def wait_bootstrapped(self, timeout: float) -> None:
        """Until tor has bootstrapped; TorError with its last step if it has not within
        ``timeout`` seconds."""
        summary = ""
        with trio.move_on_after(timeout):
            while True:
                progress, summary = await self.control.bootstrap_progress()
                if progress >= 100:
                    return
                await trio.sleep(POLL)
        raise TorError(f"tor has not connected to the Tor network in {timeout:g} s "
                       f"(its last step: {summary or 'none'})")  # fmt: skip


def torrc(folder: Path, settings: TorSettings) -> str:
    data = folder / "data"
    lines = [
        f"DataDirectory {data}",
        "SocksPort 127.0.0.1:auto ExtendedErrors",
        "ControlPort 127.0.0.1:auto",
        f"ControlPortWriteToFile {folder / 'control-port'}",
        "CookieAuthentication 1",
        f"CookieAuthFile {data / 'control_auth_cookie'}",
        f"Log notice file {folder / 'notice.log'}",
        "ClientOnly 1",
        # Exit with us even if we die without a word (then our control connection's
        # TAKEOWNERSHIP cannot say it).
        f"__OwningControllerProcess {os.getpid()}",
        settings.extra,
    ]
    return "\n".join(line for line in lines if line) + "\n"


def find_tor(settings: TorSettings) -> str:
    found = shutil.which(settings.executable)
    if found is None:
        raise TorError(f"{settings.executable} is not installed: install the tor package "
                       "(Debian/Ubuntu: apt install tor; macOS: brew install tor)")  # fmt: skip
    return found


@asynccontextmanager
async def run_tor(folder: Path, settings: TorSettings) -> AsyncIterator[RunningTor]:
    """Start tor in ``folder`` (its torrc, data and log), yield it running, stop it."""
    executable = find_tor(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / "data").mkdir(exist_ok=True, mode=0o700)
    port_file = folder / "control-port"
    port_file.unlink(missing_ok=True)
    (folder / "torrc").write_text(torrc(folder, settings))
    # What tor says before its log is open (a bad torrc) goes to a file of its own.
    with open(folder / "start.log", "wb") as start_log:
        process = await trio.lowlevel.open_process(
            [executable, "-f", str(folder / "torrc")],
            stdin=subprocess.DEVNULL, stdout=start_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        address = await _control_address(process, port_file, folder)
        async with open_tor_control(address) as control:
            await control.command("TAKEOWNERSHIP")
            socks = await control.socks_address()
            yield RunningTor(control, socks, process, folder)
    finally:
        with trio.CancelScope(shield=True):
            await _stop(process)


async def _control_address(process: trio.Process, port_file: Path, folder: Path) -> tuple[str, int]:
    with trio.move_on_after(STARTED_WITHIN):
        while True:
            address = control_port_file(port_file)
            if address is not None:
                return address
            if process.poll() is not None:
                raise TorError(f"tor stopped at start: {_last_words(folder)}")
            await trio.sleep(POLL)
    raise TorError(f"tor did not open its control port in {STARTED_WITHIN:g} s: "
                   f"{_last_words(folder)}")  # fmt: skip


def _last_words(folder: Path) -> str:
    """The last warning or error in tor's log, for a person to act on."""
    lines = []
    for log in ("start.log", "notice.log"):
        try:
            lines += (folder / log).read_text(errors="replace").splitlines()
        except OSError:
            continue
    errors = [line for line in lines if "[err]" in line]
    warnings = [line for line in lines if "[warn]" in line]
    if errors and ("warnings above" not in errors[-1] or not warnings):
        said = errors[-1]
    else:
        said = (warnings or lines or ["it wrote nothing"])[-1]
    return said.split("] ", 1)[-1]


async def _stop(process: trio.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    with trio.move_on_after(STOPPED_WITHIN):
        await process.wait()
        return
    process.kill()
    await process.wait()
