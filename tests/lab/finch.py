"""finch (libpurple's Bonjour protocol, XEP-0174) in a lab host, driven without its
screen: through libpurple's D-Bus API.

A host gets its own system bus (``dbus-daemon`` on a socket in the test's folder, open
to all, which libpurple also uses as its session bus), its own Avahi (libpurple's
Bonjour publishes and browses through it; run in a mount namespace with a private
``/run``, where it keeps its pid file and socket) and finch itself in a tmux session
(it needs a terminal). Debian packages: finch libpurple0 libpurple-bin avahi-daemon
avahi-utils dbus tmux (.ci/run installs them).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab.netlab import Host

SERVICE = "im.pidgin.purple.PurpleService"
OBJECT = "/im/pidgin/purple/PurpleObject"
INTERFACE = "im.pidgin.purple.PurpleInterface"
TOOLS = ("finch", "avahi-daemon", "dbus-daemon", "dbus-send", "dbus-monitor", "tmux", "unshare")

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""

AVAHI_CONFIG = """[server]
host-name={machine}
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
"""

ACCOUNTS = """<?xml version='1.0' encoding='UTF-8' ?>
<account version='1.0'>
 <account>
  <protocol>prpl-bonjour</protocol>
  <name>{jid}</name>
  <settings>
   <setting name='first' type='string'>{first}</setting>
   <setting name='last' type='string'>{last}</setting>
   <setting name='port' type='int'>5298</setting>
  </settings>
  <settings ui='gnt-purple'>
   <setting name='auto-login' type='bool'>1</setting>
  </settings>
 </account>
</account>
"""

# A signal as dbus-monitor prints it: the header line, then one argument per line.
_SIGNAL = re.compile(r"^signal .*member=(\w+)$")
_ARGUMENT = re.compile(r'^\s+(?:string "(.*)"|u?int32 (-?\d+))$')


def require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        if os.environ.get("P2PCHAT_LAB_REQUIRED") == "1":
            pytest.fail(f"the finch lab needs {', '.join(missing)}")
        pytest.skip(f"the finch lab needs {', '.join(missing)}")


class Finch:
    """finch with one Bonjour account ``user@machine``, on ``host``."""

    def __init__(self, host: Host, folder: Path, user: str = "fred", machine: str = "finchhost",
                 first: str = "Fred", last: str = "Finch") -> None:  # fmt: skip
        require_tools()
        self.host = host
        self.jid = f"{user}@{machine}"
        self.folder = folder
        self.bus = folder / "bus"
        self.session = f"finch-{host.name}"
        home = folder / "home"
        (home / ".purple").mkdir(parents=True)
        (folder / "run").mkdir()
        (folder / "bus.conf").write_text(BUS_CONFIG.format(bus=self.bus))
        (folder / "avahi.conf").write_text(AVAHI_CONFIG.format(machine=machine))
        (home / ".purple" / "accounts.xml").write_text(
            ACCOUNTS.format(jid=self.jid, first=first, last=last)
        )
        address = f"unix:path={self.bus}"
        self.env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address,
                    "DBUS_SESSION_BUS_ADDRESS": address, "HOME": str(home),
                    "LANG": "C.UTF-8", "TERM": "xterm"}  # fmt: skip
        self._processes: list[subprocess.Popen[bytes]] = []
        self._bus_pid = 0
        self._monitor: subprocess.Popen[bytes] | None = None
        self.signals_path = folder / "signals.txt"

    # ---------------------------------------------------------------- running

    def start(self, timeout: float = 60) -> None:
        """The bus, Avahi and finch; returns once finch's account is online."""
        started = subprocess.run(
            [*self.host.exec_prefix, "dbus-daemon", f"--config-file={self.folder}/bus.conf",
             "--fork", "--print-pid=1"],
            capture_output=True, text=True, env=self.env, timeout=30, check=True,
        )  # fmt: skip
        self._bus_pid = int(started.stdout.split()[0])
        avahi = (f"mount --bind {self.folder}/run /run && exec avahi-daemon --no-drop-root "
                 f"--no-chroot --no-rlimits -f {self.folder}/avahi.conf")  # fmt: skip
        with open(self.folder / "avahi.log", "wb") as log:
            self._processes.append(subprocess.Popen(
                [*self.host.exec_prefix, "unshare", "-m", "--propagation", "private",
                 "sh", "-c", avahi],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        with open(self.signals_path, "wb") as signals:
            self._monitor = subprocess.Popen(
                ["dbus-monitor", "--address", f"unix:path={self.bus}",
                 f"type='signal',interface='{INTERFACE}'"],
                env=self.env, stdout=signals, stderr=subprocess.STDOUT,
            )  # fmt: skip
        finch = " ".join([*self.host.exec_prefix, "env", *(f"{k}={self.env[k]}" for k in (
            "HOME", "DBUS_SYSTEM_BUS_ADDRESS", "DBUS_SESSION_BUS_ADDRESS", "LANG", "TERM")),
            "finch", "-d", f"2>{self.folder}/finch.log"])  # fmt: skip
        subprocess.run(["tmux", "new-session", "-d", "-s", self.session, "-x", "160", "-y", "45",
                        finch], check=True, timeout=30)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.account() and self.online():
                return
            time.sleep(0.2)
        raise AssertionError(f"finch did not come online within {timeout} s:\n{self.screen()}")

    def quit(self) -> None:
        """finch ends (its Bonjour account says goodbye on mDNS as it goes)."""
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)

    def close(self) -> None:
        self.quit()
        for process in [*self._processes, *([self._monitor] if self._monitor else [])]:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        if self._bus_pid:
            subprocess.run(["kill", str(self._bus_pid)], capture_output=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.session],
                              capture_output=True, text=True).stdout  # fmt: skip

    # ---------------------------------------------------------------- D-Bus

    def call(self, method: str, *arguments: str) -> str:
        """One libpurple D-Bus call, its reply as dbus-send prints it ("" if none)."""
        result = subprocess.run(
            [*self.host.exec_prefix, "dbus-send", f"--bus=unix:path={self.bus}",
             "--print-reply=literal", f"--dest={SERVICE}", OBJECT, f"{INTERFACE}.{method}",
             *arguments],
            capture_output=True, text=True, env=self.env, timeout=30,
        )  # fmt: skip
        return result.stdout.strip() if result.returncode == 0 else ""

    def number(self, method: str, *arguments: str) -> int:
        reply = self.call(method, *arguments).split()
        return int(reply[-1]) if reply and reply[-1].lstrip("-").isdigit() else 0

    def account(self) -> int:
        return self.number("PurpleAccountsFind", f"string:{self.jid}", "string:prpl-bonjour")

    def online(self) -> bool:
        return self.number("PurpleAccountIsConnected", f"int32:{self.account()}") == 1

    def buddy(self, jid: str) -> int:
        return self.number("PurpleFindBuddy", f"int32:{self.account()}", f"string:{jid}")

    def buddy_alias(self, buddy: int) -> str:
        return self.call("PurpleBuddyGetAlias", f"int32:{buddy}")

    def buddy_status(self, buddy: int) -> str:
        """The id of the buddy's active status: available, away, offline, ..."""
        presence = self.number("PurpleBuddyGetPresence", f"int32:{buddy}")
        status = self.number("PurplePresenceGetActiveStatus", f"int32:{presence}")
        return self.call("PurpleStatusGetId", f"int32:{status}")

    def buddy_message(self, buddy: int) -> str:
        """The status text of the buddy's active status."""
        presence = self.number("PurpleBuddyGetPresence", f"int32:{buddy}")
        status = self.number("PurplePresenceGetActiveStatus", f"int32:{presence}")
        return self.call("PurpleStatusGetAttrString", f"int32:{status}", "string:message")

    def send(self, jid: str, text: str) -> None:
        """An IM to ``jid`` as finch's user types it (libpurple takes HTML: ``text``
        is escaped)."""
        conversation = self.number("PurpleConversationNew", "int32:1",
                                   f"int32:{self.account()}", f"string:{jid}")  # fmt: skip
        im = self.number("PurpleConvIm", f"int32:{conversation}")
        self.call("PurpleConvImSend", f"int32:{im}", f"string:{html.escape(text, quote=False)}")

    def set_status(self, kind: str, message: str = "") -> None:
        """Our status (``available``, ``away``, ``unavailable``…), as a saved status."""
        primitive = {"available": 2, "unavailable": 3, "away": 5}[kind]
        saved = self.number("PurpleSavedstatusNew", "string:", f"int32:{primitive}")
        if message:
            self.call("PurpleSavedstatusSetMessage", f"int32:{saved}", f"string:{message}")
        self.call("PurpleSavedstatusActivate", f"int32:{saved}")

    def received(self) -> list[tuple[str, str]]:
        """(sender, text) of each ReceivedImMsg signal so far; the text as libpurple
        hands it on (HTML) made plain again."""
        found: list[tuple[str, str]] = []
        lines = self.signals_path.read_text(errors="replace").splitlines()
        for index, line in enumerate(lines):
            header = _SIGNAL.match(line)
            if header is None or header.group(1) != "ReceivedImMsg":
                continue
            values = [m.group(1) if m.group(1) is not None else m.group(2)
                      for m in map(_ARGUMENT.match, lines[index + 1 : index + 6]) if m]  # fmt: skip
            if len(values) >= 3:
                found.append((values[1], plain(values[2])))
        return found

    def wait_received(self, text: str, timeout: float = 30) -> str:
        """The sender of the first IM whose text is ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for sender, received in self.received():
                if received == text:
                    return sender
            time.sleep(0.1)
        raise AssertionError(f"finch did not receive {text!r}; it got {self.received()}")


def plain(markup: str) -> str:
    """libpurple's HTML as text: tags dropped, <br> as newlines, entities resolved."""
    text = re.sub(r"<br\s*/?>", "\n", markup.replace('\\"', '"'))
    return html.unescape(re.sub(r"<[^>]*>", "", text))
