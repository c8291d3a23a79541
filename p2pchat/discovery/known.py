"""Peers reachable without multicast: remembered addresses, static peers and invite codes.

Remembered addresses live in the profile (``peers.json``): after a restart a node
dials them at once instead of waiting for mDNS. Static peers come from the profile's
``config.json`` (``"peers": ["HOST:PORT", ...]``) and ``--peer``. Invite codes are
``p2pchat:`` URIs carrying a peer id, its addresses and a one-time token.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.secret

from p2pchat.addresses import format_host_port, parse_host_port
from p2pchat.chat.invites import decode_token, encode_token
from p2pchat.diskfaults import DiskHealth
from p2pchat.identity import decode_peer_id
from p2pchat.tor.onion import is_onion

log = logging.getLogger("p2pchat.discovery")

KNOWN_FILE = "peers.json"
MAX_KNOWN_PEERS = 1000
MAX_ADDRESSES_PER_PEER = 8
INVITE_SCHEME = "p2pchat"
MAX_INVITE_CHARS = 2048


@dataclass(frozen=True, slots=True)
class Target:
    """Somewhere to dial: an address, and the identity expected there if known."""

    host: str
    port: int
    peer_id: str | None = None
    source: str = "static"
    nick: str | None = None
    invite: bytes = b""  # an invite code's one-time token, presented in the handshake

    @property
    def address(self) -> str:
        return format_host_port(self.host, self.port)


class KnownPeers:
    """The last good addresses of peers we verified, most recent first.

    Saving never raises: the file only speeds up the next start. If it cannot be
    written (a full disk), the change stays in memory and goes out with the next
    save; ``health`` hears of the failure and of the recovery.
    """

    def __init__(
        self, path: Path, *, health: DiskHealth | None = None, key: bytes | None = None
    ) -> None:
        """``key``: a locked profile's database key; the file is then sealed with a key
        derived from it (it names peers, their nicks and where they were)."""
        self.path = path
        self.health = health
        self._box = None if key is None else nacl.secret.SecretBox(_file_key(key))
        self._unsaved = False
        self._peers: dict[str, dict[str, Any]] = self._load()
        if self._unsaved:
            self._save()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            raw = self.path.read_bytes()
            data = json.loads(self._open(raw))
            if self._box is not None and not raw.startswith(SEALED_HEADER):
                self._unsaved = True  # written before the profile was locked: sealed soon
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as error:
            kept = self.path.with_suffix(".json.corrupt")
            log.warning(
                "%s is unreadable (%s); kept as %s, starting afresh", self.path, error, kept
            )
            with contextlib.suppress(OSError):  # a read-only disk: it is only a cache
                os.replace(self.path, kept)
            return {}
        peers: dict[str, dict[str, Any]] = {}
        if isinstance(data, dict):
            for peer_id, entry in list(data.items())[:MAX_KNOWN_PEERS]:
                addresses = entry.get("addresses") if isinstance(entry, dict) else None
                try:
                    decode_peer_id(peer_id)
                    parsed = [parse_host_port(a) for a in addresses or [] if isinstance(a, str)]
                except ValueError:
                    continue
                if parsed:
                    peers[peer_id] = {
                        "addresses": [format_host_port(h, p) for h, p in parsed][
                            :MAX_ADDRESSES_PER_PEER
                        ],
                        "nick": entry.get("nick") if isinstance(entry.get("nick"), str) else None,
                        "seen": entry.get("seen") if isinstance(entry.get("seen"), int) else 0,
                    }
        return peers

    def remember(self, peer_id: str, address: str, nick: str | None = None) -> None:
        entry = self._peers.setdefault(peer_id, {"addresses": [], "nick": None, "seen": 0})
        entry["addresses"] = [address, *(a for a in entry["addresses"] if a != address)][
            :MAX_ADDRESSES_PER_PEER
        ]
        entry["nick"] = nick or entry["nick"]
        entry["seen"] = int(time.time())
        if len(self._peers) > MAX_KNOWN_PEERS:  # forget the longest unseen
            oldest = min(self._peers, key=lambda key: self._peers[key]["seen"])
            del self._peers[oldest]
        self._save()

    def targets(self) -> list[Target]:
        found = []
        for peer_id, entry in sorted(self._peers.items(), key=lambda item: -item[1]["seen"]):
            hosts = [parse_host_port(address) for address in entry["addresses"]]
            # A peer's addresses are tried in order: the LAN's before its onion address,
            # which is slower and needs our tor (docs/protocol.md §19.3).
            for host, port in sorted(hosts, key=lambda hp: is_onion(hp[0])):
                found.append(Target(host, port, peer_id, "remembered", entry["nick"]))
        return found

    def nick(self, peer_id: str) -> str | None:
        entry = self._peers.get(peer_id)
        return entry["nick"] if entry else None

    def _open(self, raw: bytes) -> str:
        """The file's JSON text; ValueError if it is sealed and cannot be opened."""
        return _opened(raw, self._box)

    def copy_to(self, path: Path, key: bytes | None) -> None:
        """Write what this file holds to ``path`` under ``key`` (the profile's lock
        changes: p2pchat.relock), durably; OSError if it cannot."""
        data = _encoded(self._peers, None if key is None else nacl.secret.SecretBox(_file_key(key)))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        data = _encoded(self._peers, self._box)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self.path)
        except OSError as error:
            # The old file stands; a half-written temporary one would only take space.
            with contextlib.suppress(OSError):
                tmp.unlink()
            self._unsaved = True
            if self.health is None or self.health.failed(str(self.path), error) is None:
                log.warning("cannot save %s: %s (kept in memory)", self.path, error)
            return
        self._unsaved = False
        if self.health is not None:
            self.health.ok(str(self.path))

    @property
    def unsaved(self) -> bool:
        """The last save failed: memory holds changes the file does not."""
        return self._unsaved

    def flush(self) -> None:
        """Save what a failed save left in memory (the disk takes writes again)."""
        if self._unsaved:
            self._save()


SEALED_HEADER = b"p2pchat-sealed-v1\n"


def opens_under(path: Path, key: bytes | None) -> bool:
    """Whether the file at ``path`` is a peers file written under ``key`` exactly
    (sealed with it; or plain, for None)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return False
    if raw.startswith(SEALED_HEADER) != (key is not None):
        return False
    try:
        _opened(raw, None if key is None else nacl.secret.SecretBox(_file_key(key)))
    except ValueError:  # UnicodeDecodeError is one
        return False
    return True


def _opened(raw: bytes, box: nacl.secret.SecretBox | None) -> str:
    """The JSON text of a peers file, plain or sealed with ``box``; ValueError if it is
    sealed and ``box`` cannot open it."""
    if not raw.startswith(SEALED_HEADER):
        return raw.decode("utf-8")
    if box is None:
        raise ValueError("sealed, and this profile is not locked (any more)")
    try:
        sealed = base64.b64decode(raw[len(SEALED_HEADER) :].strip(), validate=True)
        return box.decrypt(sealed).decode("utf-8")
    except (binascii.Error, nacl.exceptions.CryptoError) as error:
        raise ValueError(f"sealed under another key: {error}") from None


def _encoded(peers: dict[str, dict[str, Any]], box: nacl.secret.SecretBox | None) -> bytes:
    data = json.dumps(peers, indent=1, sort_keys=True).encode("utf-8")
    if box is None:
        return data
    return SEALED_HEADER + base64.b64encode(bytes(box.encrypt(data))) + b"\n"


def _file_key(database_key: bytes) -> bytes:
    """The key of a locked profile's ``peers.json``: from its database key, apart."""
    return hashlib.blake2b(b"peers.json", key=database_key, digest_size=32,
                           person=b"p2pchat-file-key").digest()  # fmt: skip


def static_targets(config_peers: Any, cli_peers: list[str] | None) -> list[Target]:
    """Targets from config.json's "peers" and from --peer; raises ValueError on bad input."""
    entries: list[str] = []
    if config_peers is not None:
        if not isinstance(config_peers, list) or not all(isinstance(p, str) for p in config_peers):
            raise ValueError('"peers" in config.json must be a list of "HOST:PORT" strings')
        entries += config_peers
    entries += cli_peers or []
    targets = []
    for entry in entries:
        if entry.startswith(f"{INVITE_SCHEME}:"):
            targets += parse_invite(entry)
        else:
            host, port = parse_host_port(entry)
            targets.append(Target(host, port))
    return targets


def make_invite(
    peer_id: str, addresses: list[str], nick: str | None = None, token: bytes = b""
) -> str:
    """An invite code; ``token`` (from ChatService.new_invite) admits whoever dials it
    first, once (docs/protocol.md §10.1)."""
    query = [("addr", address) for address in addresses]
    if nick:
        query.append(("nick", nick))
    if token:
        query.append(("t", encode_token(token)))
    return f"{INVITE_SCHEME}:{peer_id}?{urllib.parse.urlencode(query, safe=':[]')}"


def parse_invite(code: str) -> list[Target]:
    """The targets an invite code names; ValueError with a readable reason if it is bad."""
    code = code.strip()
    if len(code) > MAX_INVITE_CHARS:
        raise ValueError("this invite code is too long")
    if not code.startswith(f"{INVITE_SCHEME}:"):
        raise ValueError(f"an invite code starts with '{INVITE_SCHEME}:'")
    body = code[len(INVITE_SCHEME) + 1 :]
    peer_id, _, query = body.partition("?")
    decode_peer_id(peer_id)  # raises ValueError naming the problem
    addresses = [value for key, value in urllib.parse.parse_qsl(query) if key == "addr"]
    if not addresses:
        raise ValueError("this invite code has no address")
    tokens = [value for key, value in urllib.parse.parse_qsl(query) if key == "t"]
    try:
        token = decode_token(tokens[0]) if tokens else b""
    except ValueError as error:
        raise ValueError(f"this invite code is damaged: {error}") from None
    targets = []
    for address in addresses[:MAX_ADDRESSES_PER_PEER]:
        host, port = parse_host_port(address)
        targets.append(Target(host, port, peer_id.lower(), "invite", invite_nick(code), token))
    return targets


def invite_nick(code: str) -> str | None:
    query = code.partition("?")[2]
    nicks = [value for key, value in urllib.parse.parse_qsl(query) if key == "nick"]
    return nicks[0][:32] if nicks else None
