"""DNS-SD records for p2pchat, as pure data: what we announce and how we judge what we see.

In the spirit of XEP-0174 (link-local messaging) a node announces one instance of
``_p2pchat._tcp.local.`` with TXT keys ``txtvers``, ``v`` (protocol versions it
speaks, comma-separated), ``id`` (peer id) and optionally ``nick`` and ``status``.
Everything in a record is a *hint*: the handshake proves the identity. A record that
is malformed in any way is rejected here with a reason, never half-used.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from p2pchat.discovery.tokens import parse_token
from p2pchat.identity import decode_peer_id, encode_peer_id
from p2pchat.wire.messages import MAX_NICK_CHARS, SETTABLE_STATUSES, Status

SERVICE_TYPE = "_p2pchat._tcp.local."
TXT_VERSION = "1"
PRIVATE_TXT_VERSION = "2"  # a private announcement: a token instead of id, nick, status
MAX_INSTANCE_BYTES = 63  # a DNS label
MAX_TXT_ENTRY_BYTES = 255
MAX_TXT_ENTRIES = 32


class InvalidRecord(ValueError):
    """A discovered record we will not use; the message says why (for debug logs)."""


@dataclass(frozen=True, slots=True)
class Announcement:
    """What this node tells the network about itself."""

    peer_id: str
    port: int
    versions: tuple[int, ...]
    nick: str | None = None
    status: Status | None = None

    def txt(self) -> dict[str, str]:
        properties = {
            "txtvers": TXT_VERSION,
            "v": ",".join(str(version) for version in self.versions),
            "id": self.peer_id,
        }
        if self.nick is not None:
            properties["nick"] = _fit_txt_value("nick", self.nick)
        if self.status is not None:
            properties["status"] = self.status.value
        return properties

    def instance_name(self) -> str:
        """A readable, unique instance label of at most 63 bytes: ``nick (idprefix)``."""
        suffix = f" ({self.peer_id[:8]})"
        base = _printable(self.nick or "p2pchat")
        room = MAX_INSTANCE_BYTES - len(suffix.encode())
        encoded = base.encode("utf-8")[:room]
        base = encoded.decode("utf-8", "ignore").rstrip()  # never cut a character in half
        return f"{base}{suffix}"


@dataclass(frozen=True, slots=True)
class PrivateAnnouncement:
    """What a node in private discovery tells the network (docs/protocol.md §10.2):
    that a p2pchat node listens there, and a token only its contacts recognise. The
    instance label is random, drawn anew with each token."""

    port: int
    versions: tuple[int, ...]
    token: str
    label: str = field(default_factory=lambda: private_label())

    def txt(self) -> dict[str, str]:
        return {
            "txtvers": PRIVATE_TXT_VERSION,
            "v": ",".join(str(version) for version in self.versions),
            "t": self.token,
        }

    def instance_name(self) -> str:
        return self.label


def private_label() -> str:
    """An instance label that says nothing but "p2pchat" (the service type does)."""
    return f"p2pchat-{os.urandom(5).hex()}"


@dataclass(frozen=True, slots=True)
class PrivateRecord:
    """A validated private announcement seen on the network: whose it is, only a
    contact holding its announce key can tell (p2pchat.discovery.tokens)."""

    instance: str
    token: str
    addresses: tuple[str, ...]
    port: int
    versions: tuple[int, ...]

    def as_peer(self, peer_key: bytes) -> DiscoveredPeer:
        """The record as a peer's, once a contact's key recognised its token."""
        return DiscoveredPeer(self.instance, encode_peer_id(peer_key), peer_key,
                              self.addresses, self.port, self.versions, None, None)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DiscoveredPeer:
    """A validated record seen on the network (not yet proven by a handshake)."""

    instance: str
    peer_id: str
    peer_key: bytes
    addresses: tuple[str, ...]
    port: int
    versions: tuple[int, ...]
    nick: str | None
    status: Status | None


def parse_record(
    instance: str,
    properties: Mapping[bytes, bytes | None],
    addresses: Iterable[str],
    port: int | None,
    *,
    supported_versions: Iterable[int],
) -> DiscoveredPeer | PrivateRecord:
    """Validate one resolved service; raise InvalidRecord saying what is wrong."""
    if len(properties) > MAX_TXT_ENTRIES:
        raise InvalidRecord(f"{len(properties)} TXT entries is too many")
    txt: dict[str, str] = {}
    for raw_key, raw_value in properties.items():
        try:
            key = raw_key.decode("ascii").lower()
            value = "" if raw_value is None else raw_value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidRecord(f"TXT entry is not text: {error}") from None
        if len(raw_key) + len(raw_value or b"") + 1 > MAX_TXT_ENTRY_BYTES:
            raise InvalidRecord(f"TXT entry {key!r} is over {MAX_TXT_ENTRY_BYTES} bytes")
        txt[key] = value
    if txt.get("txtvers") not in (TXT_VERSION, PRIVATE_TXT_VERSION):
        raise InvalidRecord(f"unknown txtvers {txt.get('txtvers')!r}")
    versions = _parse_versions(txt.get("v"))
    if not set(versions) & set(supported_versions):
        raise InvalidRecord(f"no protocol version in common (peer speaks {versions})")
    if port is None or not 0 < port < 65536:
        raise InvalidRecord(f"bad port {port!r}")
    usable = tuple(address for address in addresses if _usable(address))
    if not usable:
        raise InvalidRecord("no usable address")
    if txt["txtvers"] == PRIVATE_TXT_VERSION:
        token = txt.get("t", "")
        if parse_token(token) is None:
            raise InvalidRecord("a private record without a valid token")
        return PrivateRecord(instance, token, usable, port, versions)
    peer_id = txt.get("id", "")
    try:
        peer_key = decode_peer_id(peer_id)
    except ValueError as error:
        raise InvalidRecord(f"bad id: {error}") from None
    nick = txt.get("nick")
    if nick is not None and (not nick or len(nick) > MAX_NICK_CHARS or not nick.isprintable()):
        raise InvalidRecord("nick is empty, too long or not printable")
    status = None
    if "status" in txt:
        # Only what a person can set is announced (XEP-0174 names): never "offline".
        status = next((s for s in SETTABLE_STATUSES if s == txt["status"]), None)
        if status is None:
            raise InvalidRecord(f"unknown status {txt['status']!r}")
    return DiscoveredPeer(
        instance=instance,
        peer_id=peer_id.lower(),
        peer_key=peer_key,
        addresses=usable,
        port=port,
        versions=versions,
        nick=nick,
        status=status,
    )


def _parse_versions(text: str | None) -> tuple[int, ...]:
    if not text or not re.fullmatch(r"\d{1,6}(,\d{1,6}){0,15}", text):
        raise InvalidRecord(f"bad protocol version list {text!r}")
    return tuple(int(part) for part in text.split(","))


def _usable(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return not (parsed.is_unspecified or parsed.is_multicast)


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable()).strip() or "p2pchat"


def _fit_txt_value(key: str, value: str) -> str:
    room = MAX_TXT_ENTRY_BYTES - len(key) - 1
    return value.encode("utf-8")[:room].decode("utf-8", "ignore")
