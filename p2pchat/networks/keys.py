"""A private network's key and what is derived from it (docs/protocol.md §17). Pure.

One random 32-byte key, shared by invite code, makes a network. From it, each with
BLAKE2b under a personalisation of its own (so no derived value tells anything about
another, or about the key): the pre-shared key of every handshake (Noise ``XXpsk0``),
the key that makes the network's mDNS tokens, the mDNS service name, and a short id to
name the network by.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from dataclasses import dataclass, field

NETWORK_KEY_BYTES = 32
NETWORK_ID_BYTES = 8
MAX_NETWORK_NAME_CHARS = 32
NETWORK_SCHEME = "p2pchat-network"
MAX_NETWORK_CODE_CHARS = 256
SERVICE_LABEL_HEX = 10  # "p2p-" + 10 hex digits: 14 characters, within DNS-SD's 15


def _derive(key: bytes, person: bytes, size: int = 32) -> bytes:
    return hashlib.blake2b(key, digest_size=size, person=person).digest()


def network_name_problem(name: str) -> str | None:
    """What is wrong with a network's name, if anything."""
    if not name.strip():
        return "a network needs a name"
    if len(name) > MAX_NETWORK_NAME_CHARS:
        return f"a network's name has at most {MAX_NETWORK_NAME_CHARS} characters"
    if not name.isprintable():
        return "a network's name has no control characters"
    return None


@dataclass(frozen=True, slots=True)
class Network:
    """A private network as a member holds it: a name of its own choosing and the key."""

    name: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != NETWORK_KEY_BYTES:
            raise ValueError(f"a network key has {NETWORK_KEY_BYTES} bytes")
        problem = network_name_problem(self.name)
        if problem:
            raise ValueError(problem)

    @property
    def network_id(self) -> bytes:
        """Names the network in the store and the API; says nothing of the key."""
        return _derive(self.key, b"p2pchat-net-id", NETWORK_ID_BYTES)

    @property
    def psk(self) -> bytes:
        """The pre-shared key of every handshake between members (``XXpsk0``)."""
        return _derive(self.key, b"p2pchat-net-psk")

    @property
    def announce_key(self) -> bytes:
        """The key of the network's mDNS tokens (§10.2), which only members recognise."""
        return _derive(self.key, b"p2pchat-net-ann")

    @property
    def service_type(self) -> str:
        """The DNS-SD service type members announce and browse (§17.2)."""
        label = _derive(self.key, b"p2pchat-net-svc", SERVICE_LABEL_HEX // 2).hex()
        return f"_p2p-{label}._tcp.local."


def network_code(network: Network) -> str:
    """The invite code that gives ``network`` (its key and name) to whoever reads it."""
    key = base64.b32encode(network.key).decode("ascii").rstrip("=").lower()
    name = urllib.parse.quote(network.name, safe="")
    return f"{NETWORK_SCHEME}:{key}?name={name}"


def parse_network_code(code: str) -> Network:
    """The network an invite code gives; ValueError with a readable reason if it is bad."""
    code = code.strip()
    if len(code) > MAX_NETWORK_CODE_CHARS:
        raise ValueError("this network code is too long")
    if not code.startswith(f"{NETWORK_SCHEME}:"):
        raise ValueError(f"a network code starts with '{NETWORK_SCHEME}:'")
    body, _, query = code[len(NETWORK_SCHEME) + 1 :].partition("?")
    try:
        key = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except ValueError:
        raise ValueError("this network code is damaged: the key is not base32") from None
    if len(key) != NETWORK_KEY_BYTES:
        raise ValueError("this network code is damaged: the key has the wrong length")
    names = [value for name, value in urllib.parse.parse_qsl(query) if name == "name"]
    try:
        return Network(names[0] if names else "network", key)
    except ValueError as error:
        raise ValueError(f"this network code is damaged: {error}") from None
