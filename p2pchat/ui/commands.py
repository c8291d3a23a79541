"""Slash commands typed in the composer: the table, parsing, completion, naming people.

Pure code with no Textual import, so the rules can be tested without a terminal and
shared by any front end. A line that cannot run raises the command layer's
:class:`~p2pchat.commands.CommandError` (re-exported here), as a command that fails
does; its message is shown to the user as it is: a short, plain sentence that says
what to do next.

A line is a command only when its very first character is ``/`` (as in irssi and
weechat). ``//text`` sends the literal ``/text``; :func:`literal_text` strips the
extra slash.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from p2pchat.commands import CommandError as CommandError  # what parse() raises
from p2pchat.wire.messages import SETTABLE_STATUSES, Status

PEER_PREFIX_MIN = 4  # shorter id prefixes match too many people to be safe to act on
ID_SHOWN_MIN = 4  # how much of an id an ambiguity message shows, at least
# "/name", then optionally whitespace and the rest of the line (newlines included).
_COMMAND_HEAD = re.compile(r"/(?P<name>\S*)(?P<sep>\s*)(?P<rest>.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command. ``takes`` says what the arguments are, for completion and checks:
    ``""`` nothing, ``"peer"`` a nick or id, ``"text"`` free text, ``"peer text"`` a nick
    or id then free text, ``"status"`` a status word then free text, ``"code"`` an
    invite code or address, ``"path"`` a file's path (the rest of the line). Which
    arguments are required is read from ``usage``: anything after the name that is not
    in brackets."""

    name: str
    usage: str
    help: str
    takes: str


def _spec(usage: str, help: str, takes: str = "") -> CommandSpec:
    return CommandSpec(usage.split()[0].removeprefix("/"), usage, help, takes)


_SPECS = (
    _spec("/help", "list the commands and keys"),
    _spec("/nick NAME", "change your nickname", "text"),
    _spec("/status avail|away|dnd [TEXT]", "set your status, with an optional note", "status"),
    _spec("/away [TEXT]", "mark yourself away, with an optional note", "text"),
    _spec("/back", "mark yourself available again"),
    _spec("/msg NICK-OR-ID [TEXT]", "open a conversation, and send TEXT if given", "peer text"),
    _spec("/me TEXT", "say what you do: /me waves shows * alice waves", "text"),
    _spec("/connect CODE|HOST:PORT", "reach someone by invite code or address", "code"),
    _spec(
        "/xmpp USER@HOST [TEXT]",
        "chat with a Pidgin/finch/Adium user nearby (with --xmpp-link-local): NOT ENCRYPTED",
        "peer text",
    ),
    _spec(
        "/invite [NICK-OR-ID]",
        "in a room: invite a contact (or a member of your network); else show your invite code",
        "peer",
    ),
    _spec(
        "/send PATH",
        "offer a file here: to this person, or shared with the room (Tab completes)",
        "path",
    ),
    _spec("/files", "list every file sent and received: accept, open, cancel (F6)"),
    _spec("/create NAME", "create a room and open it", "text"),
    _spec("/join ROOM", "join a room you were invited to", "text"),
    _spec("/leave", "leave the open room"),
    _spec("/members", "show / hide the open room's member list (F3)"),
    _spec("/topic [TEXT]", "set the open room's topic for everyone (or show it)", "text"),
    _spec("/remove NICK-OR-ID", "remove someone from the open room (a new key)", "peer"),
    _spec("/add NICK-OR-ID", "make someone nearby (or a request) a contact", "peer"),
    _spec("/accept NICK-OR-ID", "accept a contact request", "peer"),
    _spec("/block NICK-OR-ID", "block someone: no more messages or requests", "peer"),
    _spec("/unblock NICK-OR-ID", "unblock someone", "peer"),
    _spec("/verify [NICK-OR-ID]", "compare safety numbers (default: this chat)", "peer"),
    _spec("/search WORDS", "find messages with these words in all conversations", "text"),
    _spec("/peers", "list who is around"),
    _spec(
        "/network [ACTION]",
        "private networks: list yours; create NAME, join CODE, invite NAME (its code), leave NAME",
        "text",
    ),
    _spec("/contacts", "list your contacts"),
    _spec("/requests", "list contact requests waiting for you"),
    _spec("/system", "open the system conversation: command output, network notes, errors"),
    _spec("/find [TEXT]", "show the system lines that contain TEXT (alone: all)", "text"),
    _spec("/quit", "leave p2pchat"),
)

# Keyed by the bare name ("nick", not "/nick"), in the order /help shows them.
COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in _SPECS}

# Canonical status words and the other words people type for them ("busy" is what the
# screen shows for dnd).
STATUSES: dict[str, Status] = {
    **{status.value: status for status in SETTABLE_STATUSES},
    "available": Status.AVAILABLE,
    "busy": Status.BUSY,
}


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command: ``name`` is a key of COMMANDS, ``args`` the rest, stripped."""

    name: str
    args: str


def parse(line: str) -> Command | None:
    """Parse one composer line. None means it is text to send (see :func:`literal_text`).

    Raises CommandError for an unknown command or missing required arguments.
    """
    if not line.startswith("/") or line.startswith("//"):
        return None
    body = line[1:]
    # Any whitespace ends the name, not only a space (a tab, or Shift+Enter's newline).
    parts = body.split(None, 1)
    if not parts or body[0].isspace():
        raise CommandError("type a command after the slash — /help lists them")
    name = parts[0].lower()
    args = parts[1].strip() if len(parts) > 1 else ""
    spec = COMMANDS.get(name)
    if spec is None:
        raise CommandError(_unknown(name))
    if args == "" and _requires_args(spec):
        raise CommandError(f"usage: {spec.usage}")
    if spec.takes == "status":
        split_status(args)  # raises with the usage line if the status word is wrong
    return Command(name, args)


def literal_text(line: str) -> str:
    """The text to send for a line that :func:`parse` did not take as a command."""
    return line[1:] if line.startswith("//") else line


def split_target(args: str) -> tuple[str, str]:
    """Split ``"bob hello there"`` into ``("bob", "hello there")``; either may be empty."""
    parts = args.strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


def split_status(args: str) -> tuple[str, str]:
    """Split /status arguments into a canonical status (avail, away, dnd) and the note."""
    word, note = split_target(args)
    status = STATUSES.get(word.lower())
    if status is None:
        raise CommandError(f"usage: {COMMANDS['status'].usage}")
    return status, note


def complete(line: str, candidates: Iterable[str]) -> list[str]:
    """Completions for the whole composer line, each a full replacement line.

    Completes a command name, then the first argument: a nick or id from ``candidates``
    for commands that take a person, a status word for /status. Matching is a
    case-insensitive prefix match; results are sorted and end with a space so typing
    can go straight on. Plain text and anything past the first argument get nothing.
    """
    if not line.startswith("/") or line.startswith("//"):
        return []
    match = _COMMAND_HEAD.fullmatch(line)
    if match is None:
        return []
    name, sep, rest = match.group("name", "sep", "rest")
    if not sep:
        prefix = name.lower()
        return [f"/{known} " for known in sorted(COMMANDS) if known.startswith(prefix)]
    spec = COMMANDS.get(name.lower())
    if spec is None or any(char.isspace() for char in rest):
        return []  # unknown command, or already past the first argument
    if spec.takes.startswith("peer"):
        pool: Iterable[str] = candidates
    elif spec.takes == "status":
        pool = [status.value for status in SETTABLE_STATUSES]
    else:
        return []
    wanted = rest.casefold()
    # A candidate with whitespace could not be read back as one argument.
    found = {c for c in pool if c and not any(ch.isspace() for ch in c)}
    matches = sorted((c for c in found if c.casefold().startswith(wanted)), key=_sort_key)
    return [f"/{spec.name} {found_one} " for found_one in matches]


def resolve_peer(query: str, people: Iterable[tuple[str, str]]) -> str:
    """The peer id that ``query`` (a nick, a peer id, or an id prefix) names.

    ``people`` are (peer_id, display name) pairs. Raises CommandError when nobody
    matches or more than one person does.
    """
    wanted = query.strip()
    if not wanted:
        raise CommandError("say who: a nick or a peer id — /peers lists who is around")
    names: dict[str, str] = {}
    for peer_id, name in people:
        names.setdefault(peer_id, name)
    lowered = wanted.lower()
    if lowered in names:  # a full id is exact: it wins over any nick
        return lowered
    # Nicks are chosen by their owners and are not unique, so a nick that matches one
    # person and an id prefix that matches another is ambiguous, never a silent pick:
    # otherwise someone could take a nick that looks like your friend's id prefix.
    folded = wanted.casefold()
    matches = {peer_id for peer_id, name in names.items() if name.casefold() == folded}
    if len(wanted) >= PEER_PREFIX_MIN:
        matches.update(peer_id for peer_id in names if peer_id.startswith(lowered))
    if not matches:
        raise CommandError(f"nobody called '{wanted}' — /peers lists who is around")
    if len(matches) == 1:
        return matches.pop()
    ordered = sorted(matches, key=lambda peer_id: (_sort_key(names[peer_id]), peer_id))
    shown = _distinct_prefix_length(ordered)
    listed = ", ".join(f"{names[peer_id]} ({peer_id[:shown]}…)" for peer_id in ordered)
    raise CommandError(f"'{wanted}' could be {len(ordered)} people: {listed}; use the id")


def _requires_args(spec: CommandSpec) -> bool:
    return any(not word.startswith("[") for word in spec.usage.split()[1:])


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, COMMANDS, n=1)
    shown = name if len(name) <= 20 else name[:19] + "…"  # a pasted path can be long
    if close:
        return f"unknown command /{shown} — did you mean /{close[0]}? /help lists them"
    # Likely text that happens to start with a slash, such as a path.
    return f"unknown command /{shown} — /help lists them; start with // to send it as text"


def _sort_key(text: str) -> tuple[str, str]:
    return text.casefold(), text


def _distinct_prefix_length(peer_ids: list[str]) -> int:
    # Show just enough of each id that the user can type one back unambiguously.
    length = ID_SHOWN_MIN
    while length < max(map(len, peer_ids)) and len({p[:length] for p in peer_ids}) < len(peer_ids):
        length += 1
    return length
