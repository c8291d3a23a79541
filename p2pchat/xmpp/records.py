"""The presence records of XMPP link-local messaging (XEP-0174): what a ``_presence._tcp``
instance's TXT record says, read with care, and what ours says (docs/protocol.md,
"XMPP link-local bridge").

An instance is named ``user@machine`` and is the peer's address in its streams
(``from``/``to``). The TXT record carries ``txtvers=1``, the person's names (``1st``,
``last``, ``nick``), ``status`` (``avail``, ``away`` or ``dnd``: the same words as ours,
:class:`~p2pchat.wire.messages.Status`; libpurple says ``dnd`` for away and reads only
``dnd`` as not available, so ours says ``dnd`` for both), a status text (``msg``), ``port.p2pj`` and
what client it is (``node``, ``ver``). Anyone on the network can announce anything, so
every field is bounded and cleaned before it is shown: a record we cannot read at all
is refused with a reason, a field we cannot read is left out.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from p2pchat.wire.messages import Status

SERVICE_TYPE = "_presence._tcp.local."
PROTOCOL = "xmpp-link-local"  # how the API and the command line name this kind of peer
MAX_INSTANCE_BYTES = 63  # one DNS label
MAX_FIELD_CHARS = 128  # a name or a version, as we keep it
MAX_MESSAGE_CHARS = 255  # a status text (one TXT string at most anyway)
TXT_VALUE_BYTES = 250  # a value of ours: "nick=" and it in one TXT string (255 bytes)
STATUSES = {status.value: status for status in (Status.AVAILABLE, Status.AWAY, Status.BUSY)}


class InvalidPresence(ValueError):
    """A ``_presence._tcp`` record we will not show (the reason says why)."""


@dataclass(frozen=True, slots=True)
class LinkLocalPeer:
    """Someone an XEP-0174 client announces: ``jid`` is the instance name."""

    jid: str
    addresses: tuple[str, ...]
    port: int
    first: str = ""
    last: str = ""
    nick: str = ""
    status: Status = Status.AVAILABLE
    message: str = ""
    client: str = ""  # ``node`` and ``ver``, e.g. "libpurple 2.14.12"

    @property
    def name(self) -> str:
        """How to show them: their nick, else their names, else the user part."""
        full = f"{self.first} {self.last}".strip()
        return self.nick or full or self.jid.split("@", 1)[0]

    def listed(self) -> dict[str, object]:
        """As ``peers`` lists it (docs/api.md): never encrypted, nothing proven."""
        return {
            "id": self.jid,
            "protocol": PROTOCOL,
            "encrypted": False,
            "nick": self.name,
            "status": self.status.value,
            "status_text": self.message,
            "addresses": [f"{address}:{self.port}" for address in self.addresses],
            "client": self.client,
        }


def clean(text: str, limit: int) -> str:
    """``text`` without control or format characters (no terminal escapes, no bidi
    overrides), its whitespace runs made single spaces, at most ``limit`` characters."""
    kept = "".join(
        " " if char.isspace() else char
        for char in text
        if char.isspace() or unicodedata.category(char)[0] != "C"
    )
    # rstrip: the cut may fall just after a space (clean("ab cd", 3) was "ab ").
    return " ".join(kept.split())[:limit].rstrip(" ")


def _field(txt: Mapping[bytes, bytes | None], key: bytes, limit: int = MAX_FIELD_CHARS) -> str:
    value = txt.get(key)
    if not value:
        return ""
    try:
        return clean(value.decode("utf-8"), limit)
    except UnicodeDecodeError:
        return ""  # a field we cannot read is left out; the rest of the record stands


def check_jid(instance: str) -> str:
    """The instance name if it can be one of XEP-0174's ``user@machine`` names."""
    if not instance or len(instance.encode("utf-8")) > MAX_INSTANCE_BYTES:
        raise InvalidPresence("the instance name is empty or longer than a DNS label")
    user, at, machine = instance.partition("@")
    if not at or not user or not machine or "@" in machine:
        raise InvalidPresence(f"{instance!r} is not of the form user@machine")
    if clean(instance, MAX_INSTANCE_BYTES) != instance or " " in instance:
        raise InvalidPresence(f"{instance!r} holds spaces or control characters")
    if any(char in instance for char in "<>&'\"/"):
        raise InvalidPresence(f"{instance!r} holds characters an XMPP address may not")
    return instance


def parse_presence(
    instance: str, txt: Mapping[bytes, bytes | None], addresses: tuple[str, ...], port: int
) -> LinkLocalPeer:
    """Read one resolved instance (its name without the service type, its TXT record,
    its IPv4 addresses and the SRV record's port)."""
    jid = check_jid(instance)
    if txt.get(b"txtvers") not in (b"1", None):
        raise InvalidPresence(f"txtvers {txt.get(b'txtvers')!r}: only version 1 is known")
    if not 0 < port < 65536:
        raise InvalidPresence(f"port {port} is not a TCP port")
    if not addresses:
        raise InvalidPresence("no IPv4 address")
    node, version = _field(txt, b"node"), _field(txt, b"ver")
    status = STATUSES.get(_field(txt, b"status"), Status.AVAILABLE)
    if status is Status.BUSY and node == "libpurple":
        status = Status.AWAY  # libpurple announces every status but available as dnd
    return LinkLocalPeer(
        jid=jid,
        addresses=addresses,
        port=port,
        first=_field(txt, b"1st"),
        last=_field(txt, b"last"),
        nick=_field(txt, b"nick"),
        status=status,
        message=_field(txt, b"msg", MAX_MESSAGE_CHARS),
        client=f"{node} {version}".strip(),
    )


def presence_txt(
    *, nick: str, status: str, message: str, port: int, version: str
) -> dict[str, str]:
    """Our TXT record: the nick also as ``1st`` (libpurple shows ``1st last`` as the
    buddy's name and ignores ``nick``); away as ``dnd``, because libpurple reads only
    ``dnd`` as not available (and announces its own away so). Each value fits one TXT
    string with its key (255 bytes): MAX_FIELD_CHARS characters of a nick can be 512
    bytes, which python-zeroconf refuses to announce (ValueError), so the nick is cut
    to TXT_VALUE_BYTES as the status text is (tests/xmpp/test_records.py)."""
    nick = _fit(clean(nick, MAX_FIELD_CHARS), TXT_VALUE_BYTES)
    available = status == Status.AVAILABLE.value or status not in STATUSES
    return {
        "txtvers": "1",
        "1st": nick,
        "last": "",
        "nick": nick,
        "status": Status.AVAILABLE.value if available else Status.BUSY.value,
        "msg": _fit(clean(message, MAX_MESSAGE_CHARS), TXT_VALUE_BYTES),
        "port.p2pj": str(port),
        "node": "p2pchat",
        "ver": version,
    }


def _fit(text: str, limit_bytes: int) -> str:
    """``text`` cut to at most ``limit_bytes`` of UTF-8, never inside a character (nor
    before a space: the text stays as clean() leaves it)."""
    return text.encode("utf-8")[:limit_bytes].decode("utf-8", "ignore").rstrip(" ")
