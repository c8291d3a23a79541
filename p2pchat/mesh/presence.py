"""Signed, owner-versioned presence records and the store that judges them.

Pure: no I/O, no clock (the caller passes ``now_ms``), no randomness. A record is
signed by its owner's Ed25519 key over a canonical encoding; a receiver accepts it
only if the signature is valid, the fields are well-formed, and its version is higher
than any it already holds for that owner. Forged, altered, stale and replayed records
are rejected with a reason.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import nacl.exceptions
import nacl.signing

from p2pchat.addresses import parse_host_port
from p2pchat.identity import Identity
from p2pchat.wire.codec import signed_fields
from p2pchat.wire.messages import MAX_NICK_CHARS, MAX_STATUS_TEXT_CHARS, PresenceRecord, Status

SIGNATURE_CONTEXT = b"p2pchat-presence-v1:"
# An unlisted record signs under a context of its own and covers the flag: a relay that
# cleared the flag to pass the record on would break its signature (§11.1).
UNLISTED_CONTEXT = b"p2pchat-presence-unlisted-v1:"
_LISTED_OMITS = frozenset(("signature", "unlisted"))
STATUSES = frozenset(Status)
MAX_VERSION = 2**63 - 1


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the same version we already hold: nothing new
    STALE = "stale"  # older than what we hold: a replay or a slow relay
    FORGED = "forged"  # the signature does not verify
    INVALID = "invalid"  # well-signed nonsense (bad status, address, sizes)
    CONFLICT = "conflict"  # same version, different content: the owner's key misused


def signing_bytes(record: PresenceRecord) -> bytes:
    """What the owner signs: a context string and the fields as one msgpack array (a
    listed record's without the ``unlisted`` flag, as before the flag existed)."""
    if record.unlisted:
        return UNLISTED_CONTEXT + signed_fields(record)
    return SIGNATURE_CONTEXT + signed_fields(record, omit=_LISTED_OMITS)


def sign(record: PresenceRecord, identity: Identity) -> PresenceRecord:
    if record.owner != identity.public_key:
        raise ValueError("a presence record is signed by its owner only")
    signature = identity.signing_key.sign(signing_bytes(record)).signature
    return replace(record, signature=signature)


def make_record(
    identity: Identity,
    *,
    version: int,
    nick: str,
    status: str = "avail",
    status_text: str = "",
    addresses: tuple[str, ...] = (),
    protocol: int = 1,
    unlisted: bool = False,
) -> PresenceRecord:
    record = PresenceRecord(
        owner=identity.public_key,
        version=version,
        nick=nick,
        status=status,
        status_text=status_text,
        addresses=addresses,
        protocol=protocol,
        unlisted=unlisted,
    )
    problem = _invalid(record)
    if problem:
        raise ValueError(problem)
    return sign(record, identity)


def next_version(previous: int, now_ms: int) -> int:
    """Versions follow the owner's clock, and always go up even if the clock does not,
    so a restarted node (which may have lost its counter) still supersedes itself."""
    return max(previous + 1, now_ms)


def nick_problem(nick: str) -> str | None:
    """What is wrong with a nick (a record's, or one a room message carries), if anything."""
    return text_problem(nick, "")


def text_problem(nick: str, status_text: str) -> str | None:
    """What is wrong with a nick or status text for a record, if anything."""
    if len(nick) > MAX_NICK_CHARS:  # the wire limits, checked before signing
        return f"a nick has at most {MAX_NICK_CHARS} characters"
    if len(status_text) > MAX_STATUS_TEXT_CHARS:
        return f"a status text has at most {MAX_STATUS_TEXT_CHARS} characters"
    if not (nick + status_text).isprintable():
        return "control characters in a nick or status text"
    return None


def _invalid(record: PresenceRecord) -> str | None:
    if record.status not in STATUSES:
        return f"unknown status {record.status!r}"
    if not 0 < record.version <= MAX_VERSION:
        return "version out of range"
    problem = text_problem(record.nick, record.status_text)
    if problem:
        return problem
    for address in record.addresses:
        try:
            parse_host_port(address)
        except ValueError as error:
            return f"bad address: {error}"
    return None


def signed_by_owner(record: PresenceRecord) -> bool:
    try:
        nacl.signing.VerifyKey(record.owner).verify(signing_bytes(record), record.signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    reason: str = ""


class PresenceStore:
    """The newest valid record per owner; bounded, least recently updated evicted first."""

    def __init__(
        self,
        *,
        capacity: int = 10_000,
        verify: Callable[[PresenceRecord], bool] | None = None,
    ) -> None:
        self.capacity = capacity
        # Injectable so a simulator with a thousand nodes can verify each record once.
        self._verify = verify or signed_by_owner
        self._records: OrderedDict[bytes, PresenceRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, owner: bytes) -> PresenceRecord | None:
        return self._records.get(owner)

    def records(self) -> list[PresenceRecord]:
        return list(self._records.values())

    def forget(self, owner: bytes) -> None:
        self._records.pop(owner, None)

    def offer(self, record: PresenceRecord) -> Judgement:
        """Judge a record from anywhere; keep it if it is new and genuine."""
        held = self._records.get(record.owner)
        if held is not None and record.version < held.version:
            return Judgement(Verdict.STALE, f"version {record.version} < {held.version}")
        if held is not None and record.version == held.version:
            if record == held:
                return Judgement(Verdict.DUPLICATE)
            # Checked before the signature: a genuine conflict means a misused key,
            # a forged one is reported as forged below.
            if self._verify(record):
                return Judgement(Verdict.CONFLICT, "same version, different content")
            return Judgement(Verdict.FORGED, "signature does not verify")
        if not self._verify(record):
            return Judgement(Verdict.FORGED, "signature does not verify")
        problem = _invalid(record)
        if problem:
            return Judgement(Verdict.INVALID, problem)
        self._records[record.owner] = record
        self._records.move_to_end(record.owner)
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)
        return Judgement(Verdict.ACCEPTED)
