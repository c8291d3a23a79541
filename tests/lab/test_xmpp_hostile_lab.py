"""The XMPP link-local bridge against hostile hosts (issue 18, "Bad input"): a real
``p2pchat daemon --json --xmpp-link-local`` on one lab host; strangers on others,
announcing ``_presence._tcp`` instances with python-zeroconf and writing raw bytes to
the bridge's port (tests/lab/xmpp_agent.py, run inside their namespaces).

Every attack is refused or cut with its reason in the daemon's log, one line per kind
of attack however many connections make it (the log is rate-limited); no ``message``
event comes of it; the daemon still answers its API; and an honest peer on another
host (announced, with the right ``from``) still gets a message through afterwards.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from p2pchat.discovery.link_local import MAX_PEERS, MAX_PEERS_PER_ADDRESS
from p2pchat.node.xmpp.bridge import MAX_CONNECTIONS, MAX_PER_ADDRESS, PROTOCOL
from p2pchat.xmpp.limits import MAX_DEPTH, MAX_STANZA_ELEMENTS, MAX_STANZA_TEXT
from tests.adversary.memory import MIB, Memory, memory, mib
from tests.discovery.nodes import Node
from tests.lab.netlab import Host, Lab
from tests.lab.xmpp_agent import Agent, b64, unb64

pytestmark = pytest.mark.slow

VICTIM = "victim@victimhost"
HONEST = "honest@hhost"
MALLORY = "mallory@evilhost"
PORT = 5298  # XEP-0174's usual port: free in a lab host, so the bridge takes it
CLOSED_WITHIN = 20.0  # s: a guard against a daemon that never closes, not a speed test
# What one hostile stream may add to the daemon's peak resident size (VmHWM over VmRSS
# before). A stanza is cut at MAX_STANZA_TEXT characters, MAX_STANZA_BYTES bytes or
# MAX_STANZA_ELEMENTS elements and read 16 KiB at a time; measured before the element
# bound: 0.1 MiB for 10 MB of text, 2.3 MiB for 10 MB of empty elements (~16,000 of
# them as Python objects until the byte cut). Buffering the stanza whole would take
# 10 MB and more.
STREAM_GROWTH_BOUND = 4 * MIB
TEN_MB = 10_000_000
# What 4,000 flooded names may add: python-zeroconf's cache holds their records for
# their TTL (not ours to bound); the bridge tracks at most MAX_PEERS_PER_ADDRESS of
# them and asks for at most MAX_WAITING. Measured: 7.5 MiB.
FLOOD_GROWTH_BOUND = 16 * MIB
FLOOD = 2000

# Control characters, terminal escapes, bidi overrides: never in what the API shows.
HOSTILE_NICK = "\x1b[31mMal\x1b]0;owned\x07lory\u202e\u2066 \x00x"


def header(from_jid: str | None, to_jid: str = VICTIM) -> bytes:
    """A stream header as an XEP-0174 client writes it (no version, as libpurple)."""
    sender = f" from='{from_jid}'" if from_jid is not None else ""
    return (
        "<?xml version='1.0' encoding='UTF-8'?><stream:stream xmlns='jabber:client' "
        f"xmlns:stream='http://etherx.jabber.org/streams'{sender} to='{to_jid}'>"
    ).encode()


def chat(from_jid: str, text: str) -> bytes:
    return (
        f"<message to='{VICTIM}' from='{from_jid}' type='chat'><body>{text}</body></message>"
    ).encode()


@dataclass
class Scene:
    """The victim daemon, the agents of the other hosts, the messages that must come."""

    lab: Lab
    victim: Node
    tmp: Path
    agents: list[Agent] = field(default_factory=list)
    expected: list[tuple[str, str]] = field(default_factory=list)  # (from, text)
    _connections: int = 0

    @property
    def victim_address(self) -> str:
        return self.victim.address.rsplit(":", 1)[0]

    def agent(self, host: Host | None = None) -> Agent:
        host = host or self.lab.add_host()
        made = Agent(host, self.tmp / f"agent-{host.name}.stderr")
        self.agents.append(made)
        return made

    def announce(self, agent: Agent, jid: str, within: float = 60, **txt: str) -> dict[str, Any]:
        """``jid`` announced at ``agent``'s address; its presence as the daemon shows it."""
        record = {"txtvers": "1", "status": "avail", **txt}
        agent.ask("announce", name=jid, port=PORT, txt=record, server=server_of(jid))
        return self.victim.wait_for("presence", timeout=within, id=jid, protocol=PROTOCOL)

    def connect(self, agent: Agent, source: str = "") -> str:
        self._connections += 1
        conn = f"c{self._connections}"
        agent.ask("connect", conn=conn, host=self.victim_address, port=PORT, source=source)
        return conn

    def open_stream(self, agent: Agent, jid: str, source: str = "") -> str:
        """A connection with ``jid``'s stream header, answered by the daemon's own."""
        conn = self.connect(agent, source)
        agent.ask("send", conn=conn, data=b64(header(jid)))
        answer = agent.ask("read_until", conn=conn, marker=b64(b"<stream:stream"))
        assert answer["found"], (jid, answer, self.log())
        assert f"from='{VICTIM}'".encode() in unb64(answer["data"])
        return conn

    def refused(self, agent: Agent, conn: str) -> bytes:
        """The daemon closes ``conn``: what it wrote before closing."""
        answer = agent.ask("wait_closed", conn=conn, timeout=CLOSED_WITHIN)
        assert answer["closed"], f"still open after {CLOSED_WITHIN} s: {self.log()}"
        agent.ask("close", conn=conn)
        return unb64(answer["data"])

    def end_stream(self, agent: Agent, conn: str) -> None:
        """We end our stream; the daemon ends its own and closes."""
        agent.ask("send", conn=conn, data=b64(b"</stream:stream>"))
        assert self.refused(agent, conn).endswith(b"</stream:stream>")

    def message(self, agent: Agent, conn: str, jid: str, text: str) -> None:
        """``text`` from ``jid`` on ``conn`` arrives as a message event."""
        agent.ask("send", conn=conn, data=b64(chat(jid, text)))
        got = self.victim.wait_for("message", protocol=PROTOCOL, text=text)
        assert (got["from"], got["encrypted"]) == (jid, False)
        self.expected.append((jid, text))

    def served(self, honest: Agent) -> None:
        """The daemon answers its API, and an honest peer's message arrives whole."""
        tag = f"v{len(self.expected)}"
        self.victim.command({"cmd": "version", "tag": tag})
        self.victim.wait_for("version", tag=tag)
        conn = self.open_stream(honest, HONEST)
        self.message(honest, conn, HONEST, f"honest message {len(self.expected)}: still here")
        self.end_stream(honest, conn)

    def assert_messages(self) -> None:
        """Every message event is one that had to come. Events are in order: those any
        attack made before the last expected message are in ``seen`` by now."""
        messages = [(e["from"], e["text"]) for e in self.victim.seen if e["event"] == "message"]
        assert messages == self.expected

    def log(self) -> str:
        return self.victim.log_path.read_text()

    def log_lines(self, pattern: str) -> list[str]:
        return [line for line in self.log().splitlines() if re.search(pattern, line)]

    def assert_logged_once(self, pattern: str, started: float) -> None:
        """A line for this kind of refusal, and no more than the rate limit allows (one
        a minute): never one per connection."""
        lines = self.log_lines(pattern)
        allowed = 1 + int((time.monotonic() - started) // 60)
        assert 1 <= len(lines) <= allowed, (pattern, lines, self.log())

    def memory(self) -> Memory:
        return memory(self.victim.process.pid)

    def reset_peak(self) -> Memory:
        """VmHWM reset to the current size (Linux: clear_refs 5); the memory now."""
        Path(f"/proc/{self.victim.process.pid}/clear_refs").write_text("5")
        return self.memory()


def server_of(jid: str) -> str:
    return f"{jid.split('@')[1]}.local."


@pytest.fixture
def scene(lab: Lab, tmp_path: Path) -> Iterator[Scene]:
    host = lab.add_host()
    victim = Node(
        tmp_path / "victim",
        "--nick", "victim", "--listen", f"{host.address}:0", "--interface", host.address,
        "--xmpp-link-local", "--xmpp-name", VICTIM,
        prefix=host.exec_prefix, stdin=True,
    )  # fmt: skip
    host.processes.append(victim.process)
    made = Scene(lab, victim, tmp_path)
    try:
        yield made
    finally:
        for agent in made.agents:
            agent.close()
        assert victim.stop() == 0, made.log()


def honest_peer(scene: Scene, within: float = 60) -> Agent:
    honest = scene.agent()
    # The daemon's own instance, as any host sees it: on the port the test writes to.
    found = honest.ask("resolve", name=VICTIM, timeout_ms=20_000)
    assert (found["found"], found["port"]) == (True, PORT), found
    presence = scene.announce(honest, HONEST, within, nick="Honest Abe")
    assert (presence["nick"], presence["addresses"]) == ("Honest Abe", [honest.address])
    return honest


def test_connections_from_unannounced_addresses_or_names_and_too_many_are_refused(
    scene: Scene,
) -> None:
    started = time.monotonic()
    honest = honest_peer(scene)
    mallory = scene.agent()
    shown = scene.announce(mallory, MALLORY, nick=HOSTILE_NICK, msg="\x1b[2J\u202ewipe" + "x" * 200)
    # What a record says is shown without control or format characters.
    for text in (shown["nick"], shown["status_text"]):
        assert not [c for c in text if unicodedata.category(c)[0] == "C"], text
    assert (shown["nick"], shown["status_text"]) == ("[31mMal]0;ownedlory x", "[2Jwipe" + "x" * 200)
    stranger = scene.agent()  # announces nothing
    scene.served(honest)

    # An address no record announced: closed before a byte is read, whatever it claims.
    for _ in range(20):
        conn = scene.connect(stranger)
        stranger.ask("send", conn=conn, data=b64(header(HONEST) + chat(HONEST, "stranger")))
        assert scene.refused(stranger, conn) == b""
    scene.assert_logged_once(
        rf"refused an XMPP connection from {stranger.address}: "
        "no link-local peer announced that address",
        started,
    )

    # An announced address whose stream claims an instance announced at another (the
    # honest peer's), or one nobody announced, or none: closed, never answered.
    for claimed in [HONEST] * 10 + ["ghost@nowhere", None]:
        conn = scene.connect(mallory)
        mallory.ask("send", conn=conn, data=b64(header(claimed) + chat(HONEST, "forged")))
        assert scene.refused(mallory, conn) == b""
    scene.assert_logged_once(
        rf"an XMPP stream from {mallory.address} claims to be 'honest@hhost', "
        "which no record announces at that address",
        started,
    )
    scene.served(honest)

    # MAX_PER_ADDRESS streams from one announced address are served; more are closed
    # at once, unanswered, however many come, and the first ones stay open.
    kept = [scene.open_stream(mallory, MALLORY) for _ in range(MAX_PER_ADDRESS)]
    for _ in range(10):
        conn = scene.connect(mallory)
        mallory.ask("send", conn=conn, data=b64(header(MALLORY)))
        assert scene.refused(mallory, conn) == b""
    assert all(mallory.ask("still_open", conn=conn)["open"] for conn in kept)
    scene.assert_logged_once(
        rf"refused an XMPP connection from {mallory.address}: "
        f"{MAX_PER_ADDRESS} connections from that address are open already",
        started,
    )
    scene.served(honest)  # another address has places of its own
    # One ended, there is a place again (the daemon let it go before it closed), and
    # mallory's streams carry messages as anyone's do: it is a limit, not a ban.
    scene.end_stream(mallory, kept.pop(0))
    kept.append(scene.open_stream(mallory, MALLORY))
    scene.message(mallory, kept[-1], MALLORY, "within the limits")

    scene.served(honest)
    scene.assert_messages()
    assert scene.victim.process.poll() is None


def test_the_connection_cap_holds_across_addresses(scene: Scene) -> None:
    """MAX_CONNECTIONS streams at once, from however many announced addresses. When
    they hold every place, a connection from an address at its limit is refused, and
    one from an address holding fewer than another (an honest peer's) takes the place
    of the idlest stream of the addresses holding the most."""
    started = time.monotonic()
    honest = honest_peer(scene)
    host = scene.lab.add_host()
    addresses = [f"{scene.lab.subnet}.{200 + i}" for i in range(MAX_CONNECTIONS // MAX_PER_ADDRESS)]
    extra = f"{scene.lab.subnet}.199"
    for address in [*addresses, extra]:
        result = host.run("ip", "addr", "add", f"{address}/24", "dev", "eth0")
        assert result.returncode == 0, result.stderr
    mallory = scene.agent(host)
    jids = {address: "m{0}@evil{0}".format(address.rsplit(".", 1)[1])
            for address in [*addresses, extra]}  # fmt: skip
    instances = [
        {"name": jid, "port": PORT, "txt": {"txtvers": "1"}, "server": server_of(jid),
         "address": address}
        for address, jid in jids.items()
    ]  # fmt: skip
    mallory.ask("announce_many", instances=instances)
    for jid in jids.values():
        scene.victim.wait_for("presence", id=jid, protocol=PROTOCOL)

    held = [
        scene.open_stream(mallory, jids[address], source=address)
        for address in addresses
        for _ in range(MAX_PER_ADDRESS)
    ]
    assert len(held) == MAX_CONNECTIONS
    # Every place is held: one more from an address at its limit is refused...
    conn = scene.connect(mallory, source=addresses[1])
    mallory.ask("send", conn=conn, data=b64(header(jids[addresses[1]])))
    assert scene.refused(mallory, conn) == b""
    scene.assert_logged_once(
        rf"refused an XMPP connection from {addresses[1]}: "
        f"{MAX_PER_ADDRESS} connections from that address are open already",
        started,
    )
    # ...and one from an address holding none is taken, in place of the idlest stream
    # of the addresses holding the most (each holds MAX_PER_ADDRESS): the first opened,
    # silent since (before, it was refused while a silent stream kept its place for
    # IDLE_TIMEOUT, 30 minutes).
    newcomer = scene.open_stream(mallory, jids[extra], source=extra)
    assert scene.refused(mallory, held[0]).endswith(b"</stream:stream>")
    # An honest peer gets in as well, in place of the idlest of the addresses that hold
    # the most now (not the first one's, which holds one fewer).
    scene.served(honest)
    assert scene.refused(mallory, held[MAX_PER_ADDRESS]).endswith(b"</stream:stream>")
    scene.assert_logged_once(
        rf"closed an XMPP connection from {addresses[0]} \({MAX_PER_ADDRESS} open from "
        rf"there, idle \d+ s\) for one from {extra}: {MAX_CONNECTIONS} connections are open",
        started,
    )
    kept = [conn for conn in held if conn not in (held[0], held[MAX_PER_ADDRESS])]
    # Each stream left holds a stanza begun with as many empty elements as a stanza may
    # have: what costs the parser most (before the element bound, 16,000 elements
    # in 64 KiB took 139 MiB for 64 streams). The bound: MAX_CONNECTIONS times one
    # stream's.
    before = scene.reset_peak()
    most = b"<message>" + b"<i/>" * (MAX_STANZA_ELEMENTS - 1)
    for conn in [*kept, newcomer]:
        mallory.ask("send", conn=conn, data=b64(most))
    # Places are given back as streams end (their stanzas taken whole first: every
    # byte sent before is parsed by then).
    for conn in held[1:MAX_PER_ADDRESS]:
        mallory.ask("send", conn=conn, data=b64(b"</message>"))
        scene.end_stream(mallory, conn)
    growth = scene.memory().grown_since(before)
    bound = MAX_CONNECTIONS * STREAM_GROWTH_BOUND
    assert growth <= bound, f"{MAX_CONNECTIONS} streams: grew {mib(growth):.0f} MiB"
    scene.served(honest)  # a place free: nobody else closed for it
    assert all(mallory.ask("still_open", conn=conn)["open"] for conn in kept[MAX_PER_ADDRESS - 1 :])
    scene.assert_messages()
    assert scene.victim.process.poll() is None


def billion_laughs() -> bytes:
    entities = [b'<!ENTITY lol0 "lol">'] + [
        b'<!ENTITY lol%d "%s">' % (level, b"&lol%d;" % (level - 1) * 10) for level in range(1, 10)
    ]
    return (
        b'<?xml version="1.0"?><!DOCTYPE stream:stream [' + b"".join(entities) + b"]>"
        + header(MALLORY) + chat(MALLORY, "&lol9;")
    )  # fmt: skip


def external_entity() -> bytes:
    return (
        b'<?xml version="1.0"?><!DOCTYPE stream:stream '
        b'[<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + header(MALLORY) + chat(MALLORY, "&xxe;")
    )


# (what, the bytes mallory sends, the stream error the daemon answers with (None: it
# closes without a word, the stream header not being through), the reason it logs)
BOMBS: list[tuple[str, bytes, str | None, str]] = [
    ("billion laughs", billion_laughs(), None,
     "restricted-xml: a DOCTYPE is not allowed in an XMPP stream"),
    ("an external entity", external_entity(), None,
     "restricted-xml: a DOCTYPE is not allowed in an XMPP stream"),
    ("undeclared entities", header(MALLORY) + chat(MALLORY, "&lol9;" * 10_000),
     "not-well-formed", "not-well-formed: not well-formed XML at byte .*: undefined entity"),
    ("deep nesting", header(MALLORY) + b"<message>" + b"<b>" * 200_000, "policy-violation",
     f"policy-violation: elements are nested over {MAX_DEPTH} deep"),
    ("invalid UTF-8", header(MALLORY) + chat(MALLORY, "ok").replace(b"ok", b"o\xff\xfek"),
     "not-well-formed", "not-well-formed: invalid UTF-8 at byte"),
    ("invalid UTF-8 in the header", header(MALLORY).replace(b"mallory", b"mal\xc0\xafory"),
     None, "not-well-formed: invalid UTF-8 at byte"),
]  # fmt: skip


def test_xml_bombs_huge_stanzas_bad_utf8_and_silence_are_cut(scene: Scene) -> None:
    started = time.monotonic()
    honest = honest_peer(scene)
    mallory = scene.agent()
    scene.announce(mallory, MALLORY, nick="Mallory")

    # An unclosed stream, a stanza begun, then silence: held open (the idle timeout is
    # 30 minutes) while everything below is refused and the honest peer served.
    silent = scene.open_stream(mallory, MALLORY)
    mallory.ask("send", conn=silent, data=b64(b"<message type='chat'><body>never finish"))
    scene.served(honest)

    for what, stream, condition, reason in BOMBS:
        before = scene.reset_peak()
        conn = scene.connect(mallory)
        mallory.ask("send", conn=conn, data=b64(stream))
        answer = scene.refused(mallory, conn)
        if condition is None:
            assert answer == b"", what
        else:  # answered (no XML declaration: a stream sent back, stanzas.py), then a
            # stream error, then the end of our stream
            assert answer.startswith(b"<stream:stream "), (what, answer)
            assert answer.endswith(
                f"<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                "</stream:error></stream:stream>".encode()
            ), (what, answer)
        growth = scene.memory().grown_since(before)
        assert growth <= STREAM_GROWTH_BOUND, f"{what}: the daemon grew {mib(growth):.1f} MiB"
        scene.assert_logged_once(reason, started)

    # 10 MB in one stanza, as text or as empty elements: cut once it passes
    # MAX_STANZA_TEXT characters or MAX_STANZA_ELEMENTS elements, before the daemon's peak RSS
    # grew STREAM_GROWTH_BOUND, and the writer finds the connection reset long before
    # it has written it all.
    head = header(MALLORY) + b"<message type='chat'><body>"
    for fill, reason in [
        (b"A", f"policy-violation: a stanza has over {MAX_STANZA_TEXT} characters of text"),
        (b"<i/>", f"policy-violation: a stanza has over {MAX_STANZA_ELEMENTS} elements"),
    ]:
        for _ in range(3):
            before = scene.reset_peak()
            conn = scene.connect(mallory)
            written = mallory.ask("send_stanza", conn=conn, head=b64(head), fill=b64(fill),
                                  size=TEN_MB, tail=b64(b"</body></message>"))  # fmt: skip
            growth = scene.memory().grown_since(before)
            mallory.ask("close", conn=conn)
            assert written["broken"] in ("ConnectionResetError", "BrokenPipeError"), written
            assert written["sent"] < TEN_MB / 2, written
            assert growth <= STREAM_GROWTH_BOUND, f"10 MB of {fill!r}: grew {mib(growth):.1f} MiB"
        scene.assert_logged_once(reason, started)

    # The same attacks again: no new lines (one a minute per kind of fault).
    for _, stream, _, _ in BOMBS * 2:
        conn = scene.connect(mallory)
        mallory.ask("send", conn=conn, data=b64(stream))
        scene.refused(mallory, conn)
    kinds = {reason for _, _, _, reason in BOMBS}
    for reason in kinds:
        scene.assert_logged_once(reason, started)
    lines = len(scene.log_lines("closed the XMPP stream of"))
    minutes = 1 + int((time.monotonic() - started) // 60)
    assert len(kinds) + 2 <= lines <= (len(kinds) + 2) * minutes, scene.log()

    scene.served(honest)
    assert mallory.ask("still_open", conn=silent)["open"]
    scene.assert_messages()
    assert scene.victim.process.poll() is None


def test_a_flood_of_presence_records_is_bounded_and_others_still_seen(scene: Scene) -> None:
    started = time.monotonic()
    flooder = scene.agent()
    before = scene.reset_peak()
    # FLOOD names that never resolve (PTR records alone), then FLOOD instances whole.
    ghosts = flooder.ask("flood", prefix="ghost", count=FLOOD, port=PORT,
                         server="spamhost.local.", names_only=True)  # fmt: skip
    spam = flooder.ask("flood", prefix="spam", count=FLOOD, port=PORT, server="spamhost.local.")
    assert ghosts["packets"] > 2 and spam["packets"] > 2, (ghosts, spam)
    # An honest peer announced after the flood is seen, and soon: the whole instances
    # took MAX_PEERS_PER_ADDRESS places, not the table's MAX_PEERS, and the ghosts
    # (asked for 3 times, 1.5 s each, 16 at a time: 2,000 take minutes) do not hold up
    # an instance whose records came whole.
    honest = honest_peer(scene, within=30)
    scene.victim.command({"cmd": "peers", "tag": "after"})
    listed = scene.victim.wait_for("peers", tag="after")["peers"]
    ours = [peer["id"] for peer in listed if peer["protocol"] == PROTOCOL]
    assert len([jid for jid in ours if jid.startswith("spam")]) == MAX_PEERS_PER_ADDRESS, ours
    assert MAX_PEERS_PER_ADDRESS < MAX_PEERS
    assert len(ours) == MAX_PEERS_PER_ADDRESS + 1 and HONEST in ours, ours
    shown = [e["id"] for e in scene.victim.seen if e["event"] == "presence"]
    assert sorted(shown) == sorted(ours)  # no ghost; nothing shown, then dropped
    growth = scene.memory().grown_since(before)
    assert growth <= FLOOD_GROWTH_BOUND, f"grew {mib(growth):.1f} MiB for {2 * FLOOD} names"
    scene.assert_logged_once(
        rf"ignoring link-local instances at {flooder.address}: "
        f"{MAX_PEERS_PER_ADDRESS} instances announce that address already",
        started,
    )
    scene.assert_logged_once(r"ignoring the link-local instance ghost\d+@spamhost: ", started)
    scene.served(honest)
    scene.assert_messages()
    assert scene.victim.process.poll() is None
