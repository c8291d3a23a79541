"""`doctor`'s multicast verdict counts only mDNS from other hosts: our own announcement
always comes back through this host, even where nothing crosses the network."""

from __future__ import annotations

import struct
from functools import partial
from pathlib import Path

import trio

from p2pchat.discovery.doctor import run_checks
from p2pchat.discovery.others import other_hosts, query_packet
from p2pchat.discovery.records import SERVICE_TYPE


def test_our_own_addresses_and_loopback_are_not_other_hosts() -> None:
    own = {"198.18.0.2", "10.0.0.5"}
    sources = ["198.18.0.2", "127.0.0.1", "127.0.0.53", "10.0.0.5", "198.18.0.3", "198.18.0.10"]
    assert other_hosts(sources, own) == ["198.18.0.3", "198.18.0.10"]
    assert other_hosts(["198.18.0.2"], own) == []


def test_the_query_asks_for_p2pchat_and_every_service_type() -> None:
    packet = query_packet()
    assert struct.unpack("!HHHHHH", packet[:12]) == (0, 0, 2, 0, 0, 0)
    assert b"\x08_p2pchat\x04_tcp\x05local\x00\x00\x0c\x00\x01" in packet
    assert b"\x09_services\x07_dns-sd\x04_udp\x05local\x00" in packet
    assert SERVICE_TYPE == "_p2pchat._tcp.local."


def test_our_announcement_on_loopback_does_not_say_multicast_works(tmp_path: Path) -> None:
    """On 127.0.0.1 the probe comes back (this host loops multicast to itself), and no
    other host can be there: the verdict is "no mDNS from any other host", with advice."""
    report = trio.run(partial(run_checks, tmp_path, ["127.0.0.1"], node=False))
    findings = {f.check: f for f in report.findings}
    assert findings["mDNS"].ok  # the local stack works...
    others = findings["other hosts"]
    assert not others.ok and "no mDNS from any other host" in others.detail
    assert "invite code" in others.advice
    assert not report.healthy
