"""Full-text search over every stored message, one-to-one and in rooms: the FTS5
indexes ``messages_fts`` and ``room_messages_fts`` (schema 5, kept in step with their
tables by triggers) and the one query that reads both.

What the user typed never reaches FTS5's query syntax: each word becomes a quoted
phrase (a prefix, so ``lunch`` finds "lunches"), and all must match.
"""

from __future__ import annotations

from collections.abc import Sequence

from p2pchat.store.indexing import SearchIndexing
from p2pchat.store.rows import SearchHit

MAX_SEARCH_WORDS = 16
SNIPPET_TOKENS = 12  # words around the match in a snippet
# Around each match in a snippet. Message text never holds control characters (the chat
# rules refuse them on the way in and out), so these cannot be confused with text.
_OPEN, _CLOSE = "\x02", "\x03"


def match_expression(words: Sequence[str]) -> str:
    """An FTS5 query matching messages that contain every word (as a prefix), whatever
    characters the words hold: each is a string in FTS5's double quotes."""
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words)


class SearchTables(SearchIndexing):
    """Reads of the full-text indexes (their writes: the schema's triggers and the
    catch-up of store/indexing.py, which runs first, so every stored message is found)."""

    def search(self, words: Sequence[str], *, limit: int = 50) -> list[SearchHit]:
        """Messages holding every one of ``words`` (up to MAX_SEARCH_WORDS), the most
        recently arrived first, at most ``limit``."""
        if not words:
            return []
        self.index_for_search()
        query = match_expression(words[:MAX_SEARCH_WORDS])
        snippet = f"'{_OPEN}', '{_CLOSE}', '…', {SNIPPET_TOKENS:d}"
        rows = self._all(
            f"""SELECT 0, m.peer, m.msg_id, m.sender, m.sent_at, m.received_at, m.seq,
                snippet(messages_fts, 0, {snippet})
            FROM messages_fts JOIN messages AS m ON m.seq = messages_fts.rowid
            WHERE messages_fts MATCH ?
            UNION ALL
            SELECT 1, r.room_id, r.msg_id, r.author, r.sent_at, r.received_at, r.seq,
                snippet(room_messages_fts, 0, {snippet})
            FROM room_messages_fts JOIN room_messages AS r ON r.seq = room_messages_fts.rowid
            WHERE room_messages_fts MATCH ?
            ORDER BY 6 DESC, 7 DESC LIMIT ?""",
            (query, query, limit),
        )
        return [_hit(*row) for row in rows]


def _hit(
    room: int, where: bytes, msg_id: bytes, author: bytes, sent_at: int, _arrived: int,
    _seq: int, marked: str,
) -> SearchHit:  # fmt: skip
    text, marks = _unmark(marked)
    return SearchHit(bool(room), where, msg_id, author, sent_at, text, marks)


def _unmark(marked: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The snippet without its match markers, and where the matches are in it."""
    text: list[str] = []
    marks: list[tuple[int, int]] = []
    length = 0
    start = 0
    for char in marked:
        if char == _OPEN:
            start = length
        elif char == _CLOSE:
            marks.append((start, length))
        else:
            text.append(char)
            length += 1
    return "".join(text), tuple(marks)
