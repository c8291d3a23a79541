"""A private Tor network on this machine, made from a few lines of config: directory
authorities and relays on one address (127.0.0.1 by default, or a lab namespace's),
with ``TestingTorNetwork 1`` and voting intervals of seconds, so that it needs no
internet and is up within about half a minute.

Written from tor's manual: each authority gets an identity and signing key from
``tor-gencert`` and a relay fingerprint from ``tor --list-fingerprint``; every torrc
lists every authority (``DirAuthority``); relays and clients learn the network from
them. :meth:`TorNetwork.client_torrc` gives the lines a client (our node's own tor)
needs to join it.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

TOR = "tor"
GENCERT = "tor-gencert"

# Seconds, not the real network's hours: a consensus every 10 s, the first after 6 s
# (tor's lowest: a vote and its distribution take 2 s each, plus one).
TIMING = """\
TestingTorNetwork 1
TestingV3AuthInitialVotingInterval 6
TestingV3AuthInitialVoteDelay 2
TestingV3AuthInitialDistDelay 2
V3AuthVotingInterval 10
V3AuthVoteDelay 2
V3AuthDistDelay 2
TestingDirAuthVoteHSDir *
TestingDirAuthVoteGuard *
TestingDirAuthVoteExit *
"""


@dataclass
class Relay:
    name: str
    folder: Path
    or_port: int
    dir_port: int
    authority: bool = False
    fingerprint: str = ""
    v3ident: str = ""
    process: subprocess.Popen[bytes] | None = None


@dataclass
class TorNetwork:
    """``authorities`` directory authorities and ``relays`` plain relays in ``root``,
    listening on ``address`` from ``first_port`` on."""

    root: Path
    address: str = "127.0.0.1"
    authorities: int = 3
    relays: int = 3
    first_port: int = 0  # 0: free ports, found when the network is made
    prefix: tuple[str, ...] = ()  # e.g. ("ip", "netns", "exec", NS): where tor runs
    members: list[Relay] = field(default_factory=list)

    def __post_init__(self) -> None:
        for tool in (TOR, GENCERT):
            if shutil.which(tool) is None:
                raise RuntimeError(f"the private Tor network needs {tool} (Debian package tor)")
        ports = iter(range(self.first_port, 65536)) if self.first_port else free_ports()
        for index in range(self.authorities + self.relays):
            authority = index < self.authorities
            name = f"{'auth' if authority else 'relay'}{index}"
            self.members.append(Relay(name, self.root / name, next(ports), next(ports), authority))

    # ---------------------------------------------------------------- config

    def dir_authorities(self) -> str:
        return "".join(
            f"DirAuthority {a.name} orport={a.or_port} no-v2 v3ident={a.v3ident} "
            f"{self.address}:{a.dir_port} {a.fingerprint}\n"
            for a in self.members
            if a.authority
        )

    def client_torrc(self) -> str:
        """What a client's torrc needs to join this network (its own ports aside)."""
        return TIMING + self.dir_authorities()

    def _torrc(self, relay: Relay) -> str:
        lines = [
            TIMING,
            self.dir_authorities(),
            f"DataDirectory {relay.folder}",
            f"Nickname {relay.name}",
            f"Address {self.address}",
            f"ORPort {self.address}:{relay.or_port}",
            f"DirPort {self.address}:{relay.dir_port}",
            "SocksPort 0",
            "ExitRelay 0",
            "AssumeReachable 1",
            "PublishServerDescriptor 1",
            "ContactInfo p2pchat tests",
            f"Log notice file {relay.folder}/notice.log",
            "SafeLogging 0",
            "ShutdownWaitLength 0",
            "RunAsDaemon 0",
        ]
        if relay.authority:
            lines += ["AuthoritativeDirectory 1", "V3AuthoritativeDirectory 1"]
        return "\n".join(lines) + "\n"

    # ---------------------------------------------------------------- keys

    def _keys(self, relay: Relay) -> None:
        keys = relay.folder / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        if relay.authority:
            subprocess.run(
                [*self.prefix, GENCERT, "--create-identity-key", "-m", "12",
                 "-a", f"{self.address}:{relay.dir_port}",
                 "-i", str(keys / "authority_identity_key"),
                 "-s", str(keys / "authority_signing_key"),
                 "-c", str(keys / "authority_certificate"), "--passphrase-fd", "0"],
                input=b"\n", capture_output=True, check=True, timeout=60,
            )  # fmt: skip
            for line in (keys / "authority_certificate").read_text().splitlines():
                if line.startswith("fingerprint "):
                    relay.v3ident = line.split()[1]
        (relay.folder / "torrc").write_text(self._torrc(relay))
        listed = subprocess.run(
            [*self.prefix, TOR, "--list-fingerprint", "--DataDirectory", str(relay.folder),
             "--ORPort", f"{self.address}:{relay.or_port}", "--Nickname", relay.name,
             "--DirAuthority", "x orport=1 no-v2 v3ident=" + "0" * 40 + " 127.0.0.1:1 "
             + "0" * 40, "--TestingTorNetwork", "1"],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        relay.fingerprint = _fingerprint(listed.stdout)

    # ---------------------------------------------------------------- running

    def start(self) -> None:
        for relay in self.members:
            self._keys(relay)
        for relay in self.members:  # every torrc names every authority: written again
            (relay.folder / "torrc").write_text(self._torrc(relay))
        for relay in self.members:
            with (relay.folder / "start.log").open("wb") as early:
                relay.process = subprocess.Popen(
                    [*self.prefix, TOR, "-f", str(relay.folder / "torrc")],
                    stdout=early, stderr=subprocess.STDOUT,
                )  # fmt: skip

    def stop(self) -> None:
        for relay in self.members:
            if relay.process is not None and relay.process.poll() is None:
                relay.process.terminate()
        for relay in self.members:
            if relay.process is not None:
                try:
                    relay.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    relay.process.kill()
                    relay.process.wait(timeout=10)

    def wait_for_consensus(self, timeout: float = 120) -> float:
        """Seconds until an authority has a consensus listing every relay."""
        started = time.monotonic()
        cached = self.members[0].folder / "cached-consensus"
        while time.monotonic() - started < timeout:
            if cached.exists():
                listed = cached.read_text(errors="replace").count("\nr ")
                if listed >= len(self.members):
                    return time.monotonic() - started
            for relay in self.members:
                if relay.process is not None and relay.process.poll() is not None:
                    raise MemberEnded(f"{relay.name} ended:\n{last_words(relay.folder)}")
            time.sleep(0.2)
        raise RuntimeError(f"no consensus with all {len(self.members)} relays in {timeout} s")


def start_network(
    root: Path, address: str = "127.0.0.1", prefix: tuple[str, ...] = (), attempts: int = 2
) -> tuple[TorNetwork, float]:
    """A network made in ``root`` and up (with its consensus seconds); made again with
    other ports, in a fresh folder, if one of its tors ended on the way."""
    for attempt in range(1, attempts + 1):
        network = TorNetwork(root / f"try{attempt}", address=address, prefix=prefix)
        network.start()
        try:
            return network, network.wait_for_consensus()
        except MemberEnded:
            network.stop()
            if attempt == attempts:
                raise
        except BaseException:
            network.stop()
            raise
    raise AssertionError("unreachable")


class MemberEnded(RuntimeError):
    """A tor of the network ended before the network was up (a port taken meanwhile,
    most often): worth one more try with other ports."""


def last_words(folder: Path) -> str:
    """The end of what a tor in ``folder`` said: its log file, or what it printed before
    it opened one (a bad port or torrc ends it before that)."""
    said = ""
    for name in ("start.log", "notice.log"):
        if (folder / name).exists():
            said += (folder / name).read_text(errors="replace")
    return said[-3000:] or "(nothing)"


# Ports below the kernel's ephemeral range (32768 up): a port picked there cannot be
# taken meanwhile as the local end of some outgoing connection, as a port the kernel
# picked (bind to 0) can, before tor binds it. Random, so parallel tests differ.
_PORTS = range(20000, 32000)


def free_ports() -> Iterator[int]:
    """Ports free on this machine now, each given once per call."""
    given: set[int] = set()
    while True:
        port = random.choice(_PORTS)
        if port in given:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        given.add(port)
        yield port


def _fingerprint(output: str) -> str:
    """``NAME FINGERPRINT`` (in groups of four) from ``tor --list-fingerprint``."""
    line = [line for line in output.splitlines() if line.strip()][-1]
    return "".join(line.split()[1:])


@dataclass
class TorClient:
    """A client of ``network`` (what our node's own tor will be): a SOCKS port, and an
    onion service forwarding ``onion_port`` to ``target`` if given."""

    network: TorNetwork
    folder: Path
    socks_port: int = 0
    target: tuple[str, int] | None = None
    onion_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True)
        self.folder.chmod(0o700)  # tor refuses an onion service folder others can read
        self.socks_port = self.socks_port or next(free_ports())
        lines = [
            self.network.client_torrc(),
            f"DataDirectory {self.folder}",
            f"SocksPort {self.network.address}:{self.socks_port} ExtendedErrors",
            f"Log notice file {self.folder}/notice.log",
            "SafeLogging 0",
            "ShutdownWaitLength 0",
        ]
        if self.target is not None:
            host, port = self.target
            lines += [f"HiddenServiceDir {self.folder / 'onion'}",
                      f"HiddenServicePort {self.onion_port} {host}:{port}"]  # fmt: skip
        (self.folder / "torrc").write_text("\n".join(lines) + "\n")
        with (self.folder / "start.log").open("wb") as early:
            self.process = subprocess.Popen(
                [*self.network.prefix, TOR, "-f", str(self.folder / "torrc")],
                stdout=early, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_bootstrapped(self, timeout: float = 120) -> float:
        """Seconds until this client says it is fully bootstrapped."""
        started = time.monotonic()
        log = self.folder / "notice.log"
        while time.monotonic() - started < timeout:
            if log.exists() and "Bootstrapped 100%" in log.read_text(errors="replace"):
                return time.monotonic() - started
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"tor ended:\n{last_words(self.folder)}")
            time.sleep(0.1)
        raise RuntimeError(f"not bootstrapped in {timeout} s")

    @property
    def onion(self) -> str:
        """Our onion service's address (``….onion``), once tor has made its key."""
        return (self.folder / "onion" / "hostname").read_text().strip()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
