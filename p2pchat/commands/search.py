"""Searching all history, one-to-one and rooms (``/search``, ``p2pchat search``).

What a person typed is words, never a query language: the store quotes each word
(:mod:`p2pchat.store.search`); here empty or word-less input is refused with a
sentence, and each hit is named (the conversation, the author) for any front end.
Works on the store alone, with or without a node.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pchat.chat.names import shown_name
from p2pchat.commands.base import CommandContext, CommandError, readable_errors
from p2pchat.identity import encode_peer_id
from p2pchat.store.search import MAX_SEARCH_WORDS

MAX_SEARCH_CHARS = 200


@dataclass(frozen=True, slots=True)
class Found:
    """One message that matched. ``room``: ``where`` is a room id (``conversation`` its
    name), else the other person of a one-to-one conversation (``conversation`` what to
    call them). ``snippet``: the text around the match; ``marks``: the (start, end)
    character ranges of ``snippet`` that matched."""

    room: bool
    where: bytes
    conversation: str
    msg_id: bytes
    author: bytes
    author_name: str
    time: int
    snippet: str
    marks: tuple[tuple[int, int], ...]


class SearchCommands(CommandContext):
    def search(self, text: str, limit: int = 50) -> list[Found]:
        """Messages holding every word of ``text`` (each as a word prefix, any case),
        the most recent first, at most ``limit``."""
        words = text.split()
        if not words:
            raise CommandError("say what to look for: /search WORDS")
        if len(text) > MAX_SEARCH_CHARS or len(words) > MAX_SEARCH_WORDS:
            raise CommandError(
                f"that is too much to look for: at most {MAX_SEARCH_WORDS} words "
                f"and {MAX_SEARCH_CHARS} characters"
            )
        if not any(char.isalnum() for char in text):
            raise CommandError("search for words or numbers: punctuation alone matches nothing")
        with readable_errors():
            hits = self._store.search(words, limit=limit)
            rooms = {row.room_id: row.name for row in self._store.rooms()}
        names: dict[bytes, str] = {}

        def name(peer: bytes) -> str:
            if peer not in names:
                names[peer] = shown_name(encode_peer_id(peer), self.name_of(peer))
            return names[peer]

        return [
            Found(
                hit.room,
                hit.where,
                f"#{rooms.get(hit.where, hit.where.hex()[:8])}" if hit.room else name(hit.where),
                hit.msg_id,
                hit.author,
                "me" if hit.author == self.me else name(hit.author),
                hit.sent_at,
                hit.snippet,
                hit.marks,
            )
            for hit in hits
        ]
