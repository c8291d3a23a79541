"""Whether multicast crosses the network on an interface: mDNS from *other* hosts.

Our own announcement coming back proves only that this host loops multicast back to
itself (it always does, even on a network that drops every multicast packet). Only a
packet from another host proves the network carries it: so this listens on the mDNS
group on one interface, asks once who is there (a query for p2pchat nodes and for every
DNS-SD service type, which any mDNS responder answers), and reports the sources that
are not addresses of this host. Blocking; run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import struct
import time
from collections.abc import Iterable

from p2pchat.discovery.records import SERVICE_TYPE

MDNS_GROUP = "224.0.0.251"
MDNS_PORT = 5353
IP_MULTICAST_ALL = 49  # Linux: deliver only the groups this socket joined (not in socket)
ALL_SERVICE_TYPES = "_services._dns-sd._udp.local."
PTR, IN = 12, 1


def own_addresses() -> set[str]:
    """Every IPv4 address of this host (any of them may be the source of our packets)."""
    import ifaddr  # here, not at the top: a daemon imports this module, rarely runs it

    found = {"127.0.0.1"}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.add(ip.ip)
    return found


def other_hosts(sources: Iterable[str], own: set[str]) -> list[str]:
    """The sources that are other hosts: not ours, and not loopback."""
    return sorted(
        {s for s in sources if s not in own and not ipaddress.ip_address(s).is_loopback},
        key=ipaddress.ip_address,
    )


def query_packet(names: Iterable[str] = (SERVICE_TYPE, ALL_SERVICE_TYPES)) -> bytes:
    """A one-shot mDNS query (RFC 6762: id 0, multicast answers) for PTR ``names``."""
    questions = [_encode_name(name) + struct.pack("!HH", PTR, IN) for name in names]
    return struct.pack("!HHHHHH", 0, 0, len(questions), 0, 0, 0) + b"".join(questions)


def _encode_name(name: str) -> bytes:
    labels = [label.encode("ascii") for label in name.rstrip(".").split(".")]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def heard_from_others(address: str, seconds: float) -> list[str] | None:
    """The other hosts whose mDNS packets arrived on the interface with ``address``
    within ``seconds`` (after our query); None if we could not listen there at all."""
    try:
        sock = _group_socket(address)
    except OSError:
        return None
    sources: set[str] = set()
    with sock:
        with contextlib.suppress(OSError):  # no route for the group: we may still hear
            sock.sendto(query_packet(), (MDNS_GROUP, MDNS_PORT))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([sock], [], [], left)
            if not readable:
                break
            with contextlib.suppress(OSError):
                _, (source, _) = sock.recvfrom(9000)
                sources.add(source)
    return other_hosts(sources, own_addresses() | {address})


def _group_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        # Beside every other mDNS responder of this host (they set both as well).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with contextlib.suppress(OSError):  # not Linux: we may hear other interfaces too
            sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        sock.bind(("", MDNS_PORT))
        interface = socket.inet_aton(address)
        membership = socket.inet_aton(MDNS_GROUP) + interface
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, interface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    except OSError:
        sock.close()
        raise
    return sock
