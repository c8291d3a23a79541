"""Who the UI shows, and how: contacts, requests and nearby peers as sidebar entries.

Pure: built from the store's rows and the node's presence, no Textual. Names follow
one rule everywhere (a contact's petname, else the nick it announces, else a short id),
and a nick that two identities use is flagged, never silently merged.

NEARBY lists only peers the node has *proven* (a session, or a handshake that proved
their announcement; "verified" is kept for a safety number compared in person). Anyone
can make up identities and gossip their records, so a peer only gossip vouches for is
not shown as if it were in the room: the section counts them instead
(:func:`hearsay_count`).

A request from someone we share a room with says so (:func:`member_of`): it is still a
request (a room's members were let in by any member, not by us), but not a stranger's.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from p2pchat.chat.names import person_name, shown_name
from p2pchat.commands import Contact, Request
from p2pchat.identity import encode_peer_id
from p2pchat.wire.messages import Status

# Readable without colour (ux.md): the shape carries the meaning.
PRESENCE_MARKS = {"avail": "●", "away": "◐", "dnd": "⊘", "offline": "○"}
PRESENCE_WORDS = {"avail": "available", "away": "away", "dnd": "busy", "offline": "offline"}


class Section(enum.Enum):
    SYSTEM = "SYSTEM"  # the system conversation: one entry, at the top, no heading
    CONTACTS = "CONTACTS"
    ROOMS = "ROOMS"
    REQUESTS = "REQUESTS"
    NEARBY = "NEARBY"


@dataclass(frozen=True, slots=True)
class Seen:
    """What the mesh says about a peer right now (from the node's Presence)."""

    peer_id: str
    nick: str
    status: Status
    status_text: str = ""
    proven: bool = False  # a session or a handshake showed it, not just gossip
    network: str = ""  # the private network we met it in, if any


@dataclass(frozen=True, slots=True)
class Entry:
    section: Section
    peer_id: str
    name: str
    status: str
    status_text: str = ""
    unread: int = 0
    verified: bool = False
    blocked: bool = False
    clash: bool = False  # another identity shows the same name
    rooms: tuple[str, ...] = ()  # a request: the rooms we share with them
    network: str = ""  # the private network we met it in, if any
    xmpp: bool = False  # an XMPP link-local peer: ``peer_id`` is its user@machine

    @property
    def key(self) -> str:
        return f"{self.section.value}:{self.peer_id}"

    @property
    def mark(self) -> str:
        if self.section is Section.SYSTEM:
            return "≡"
        if self.section is Section.ROOMS:
            return "?" if self.status == "invited" else "#"
        if self.section is Section.REQUESTS:
            return "?"
        return PRESENCE_MARKS.get(self.status, "○")


SYSTEM_ID = "system"
"""The system conversation's key in the sidebar (no peer id or room id looks like it)."""


def system_entry(unread_errors: int) -> Entry:
    """The sidebar's first entry: the system conversation, with its unread errors."""
    return Entry(Section.SYSTEM, SYSTEM_ID, "system", "system", unread=unread_errors)


def display_name(peer_id: str, contact: Contact | None, seen: Seen | None) -> str:
    name = person_name(contact_name=contact.name if contact else "", nick=seen.nick if seen else "")
    return shown_name(peer_id, name)


@dataclass(frozen=True, slots=True)
class RoomLine:
    """A room in the sidebar: joined (with unread messages) or an invitation."""

    room_id: str  # hex
    name: str
    unread: int = 0
    invited: bool = False
    network: str = ""  # the private network all its other members were met in


def room_network(members: Iterable[bytes], me: bytes, seen: Mapping[str, Seen]) -> str:
    """The private network a room belongs to, as far as we can tell: the one every
    other member was met in ("" if they are not all members of one network, or it is
    only us)."""
    networks = {
        shown.network if (shown := seen.get(encode_peer_id(member))) is not None else ""
        for member in members
        if member != me
    }
    return networks.pop() if len(networks) == 1 else ""


@dataclass(frozen=True, slots=True)
class XmppLine:
    """An XMPP link-local peer (docs/protocol.md §18) for the sidebar: what its record
    says, and where we stand with it (store/link_local.py: "contact", "request",
    "blocked", or "" for none yet)."""

    jid: str
    status: str = "offline"
    status_text: str = ""
    standing: str = ""
    unread: int = 0


def is_xmpp_id(peer_id: str) -> bool:
    """An entry's id is a ``user@machine`` (an XMPP peer), not a p2pchat peer id: ours
    are base32, never with an "@"."""
    return "@" in peer_id


def xmpp_entries(lines: Iterable[XmppLine]) -> list[Entry]:
    """XMPP peers as entries: contacts and blocked ones under CONTACTS, those who wrote
    under REQUESTS, others under NEARBY while online. Named by ``user@machine``: it is
    what their own clients show, and no p2pchat nick looks like one."""
    entries = []
    for line in lines:
        section = {"contact": Section.CONTACTS, "blocked": Section.CONTACTS,
                   "request": Section.REQUESTS}.get(line.standing, Section.NEARBY)  # fmt: skip
        if section is Section.NEARBY and line.status == "offline":
            continue
        blocked = line.standing == "blocked"
        entries.append(Entry(section, line.jid, line.jid, line.status, line.status_text,
                             line.unread, blocked=blocked, xmpp=True))  # fmt: skip
    return entries


def build_entries(
    contacts: Iterable[Contact],
    requests: Iterable[Request],
    seen: Iterable[Seen],
    unread: dict[str, int],
    rooms: Iterable[RoomLine] = (),
    shared: Mapping[str, list[str]] | None = None,
    xmpp: Iterable[XmppLine] = (),
) -> list[Entry]:
    """The sidebar, section by section: contacts (online first, then by name), pending
    requests (oldest first; ``shared`` names the rooms we share with each, by peer id),
    and nearby proven peers that are neither (by name). XMPP link-local peers
    (``xmpp``) join the sections they belong in."""
    seen_by_id = {s.peer_id: s for s in seen}
    entries: list[Entry] = []
    contact_ids: set[str] = set()
    for contact in contacts:
        peer_id = encode_peer_id(contact.peer)
        contact_ids.add(peer_id)
        if not contact.is_contact and not contact.blocked:
            continue
        presence = seen_by_id.get(peer_id)
        entries.append(
            Entry(
                Section.CONTACTS,
                peer_id,
                display_name(peer_id, contact, presence),
                presence.status if presence else "offline",
                presence.status_text if presence else "",
                unread.get(peer_id, 0),
                contact.verified,
                contact.blocked,
                network=presence.network if presence else "",
            )
        )
    linked = xmpp_entries(xmpp)
    entries += [e for e in linked if e.section is Section.CONTACTS]
    entries.sort(key=lambda e: (e.blocked, e.status == "offline", e.name.casefold(), e.peer_id))
    room_entries = [
        Entry(
            Section.ROOMS,
            r.room_id,
            r.name,
            "invited" if r.invited else "room",
            unread=r.unread,
            network=r.network,
        )
        for r in rooms
    ]
    entries += sorted(room_entries, key=lambda e: (e.status == "invited", e.name.casefold()))
    request_ids: set[str] = set()
    for request in requests:
        peer_id = encode_peer_id(request.peer)
        request_ids.add(peer_id)
        presence = seen_by_id.get(peer_id)
        nick = presence.nick if presence else ""
        name = shown_name(peer_id, person_name(nick=nick, request_nick=request.nick))
        entries.append(
            Entry(
                Section.REQUESTS,
                peer_id,
                name,
                presence.status if presence else "offline",
                unread=unread.get(peer_id, 0),
                rooms=tuple((shared or {}).get(peer_id, ())),
            )
        )
    entries += [e for e in linked if e.section is Section.REQUESTS]
    nearby = [
        Entry(
            Section.NEARBY,
            s.peer_id,
            shown_name(s.peer_id, s.nick),
            s.status,
            s.status_text,
            network=s.network,
        )
        for s in seen
        if s.peer_id not in contact_ids
        and s.peer_id not in request_ids
        and s.status != "offline"
        and s.proven
    ]
    nearby += [e for e in linked if e.section is Section.NEARBY]
    nearby.sort(key=lambda e: (e.name.casefold(), e.peer_id))
    entries += nearby
    return _flag_clashes(entries)


def hearsay_count(entries: Iterable[Entry], seen: Iterable[Seen]) -> int:
    """Online peers the sidebar (``entries``, from :func:`build_entries`) leaves out:
    neither contacts nor requests, and only gossip says they exist."""
    listed = {e.peer_id for e in entries}
    return sum(1 for s in seen if s.status != "offline" and s.peer_id not in listed)


def _flag_clashes(entries: list[Entry]) -> list[Entry]:
    """A name shown for two different identities is marked on both (impersonation, or
    just two Bobs: either way the user must be able to tell them apart)."""
    owners: dict[str, set[str]] = {}
    for entry in entries:
        if entry.section is Section.ROOMS:
            continue  # rooms are not people
        owners.setdefault(entry.name.casefold(), set()).add(entry.peer_id)
    clashing = {name for name, ids in owners.items() if len(ids) > 1}
    if not clashing:
        return entries
    return [replace(e, clash=e.name.casefold() in clashing) for e in entries]


def member_of(rooms: Iterable[str]) -> str:
    """``a member of #lab`` (or ``of #lab and #ops``): why a stranger who writes may be
    someone we know; empty when we share no room."""
    names = [f"#{name}" for name in rooms]
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"a member of {listed}"


def jump_targets(entries: Iterable[Entry]) -> list[Entry]:
    """What Alt+1…9 open, in sidebar order: every entry but a room invitation (it opens
    nothing until joined)."""
    return [e for e in entries if not (e.section is Section.ROOMS and e.status == "invited")]


def people_for_lookup(entries: Iterable[Entry]) -> list[tuple[str, str]]:
    """(peer id, name) pairs for resolving what the user typed after /msg and friends."""
    pairs = {(e.peer_id, e.name) for e in entries if e.section is not Section.ROOMS}
    return sorted(pairs, key=lambda pair: (pair[1].casefold(), pair[0]))


def counted(count: int, noun: str) -> str:
    """``1 member``, ``3 members``: a count with its noun in the right number."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def count_online(entries: Iterable[Entry]) -> int:
    return len({e.peer_id for e in entries if e.status != "offline"})
