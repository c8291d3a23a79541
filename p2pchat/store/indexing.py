"""The search index kept up in batches (schema 8): a message is stored without touching
the FTS5 index, and the index catches up with every row above its watermark before each
search, and whenever SEARCH_BATCH rows wait (so the catch-up stays small and bounded).

Why: FTS5 writes a new index segment in every transaction that adds a row, so indexing
each chat message in its own commit cost about half of storing it; a catch-up of a few
hundred rows writes one segment for them all.
"""

from __future__ import annotations

from p2pchat.store.core import StoreCore

SEARCH_BATCH = 256  # rows waiting in one message table before its index catches up
SEARCHED_TABLES = ("messages", "room_messages")
BATCHED_SINCE = 8  # the schema version with watermarks (older ones index every row at once)


class SearchIndexing(StoreCore):
    """The watermarks of the search indexes and their catch-up."""

    def _indexed_up_to(self, table: str) -> int:
        """The table's watermark (cached: only this connection's catch-ups move it, and
        a stale value only makes a catch-up come early)."""
        cache = self._cache("search")
        mark = cache.get(table)
        if mark is None:
            mark = cache[table] = self._count(
                "SELECT seq FROM search_indexed WHERE name = ?", (table,)
            )
        return int(mark)

    def _added_for_search(self, table: str, seq: int) -> None:
        """A row was added to ``table``: catch up once SEARCH_BATCH rows wait."""
        if self.schema_version < BATCHED_SINCE:
            return
        if seq - self._indexed_up_to(table) >= SEARCH_BATCH:
            self.index_for_search(table)

    def index_for_search(self, *tables: str) -> None:
        """Index every row above the watermark of ``tables`` (default: both) and move it."""
        if self.schema_version < BATCHED_SINCE:
            return
        cache = self._cache("search")
        with self.transaction():
            for table in tables or SEARCHED_TABLES:
                # Read under the write lock: another connection may have caught up.
                mark = self._count("SELECT seq FROM search_indexed WHERE name = ?", (table,))
                newest = self._count(f"SELECT max(seq) FROM {table}")
                if newest > mark:
                    self._exec(
                        f"INSERT INTO {table}_fts (rowid, text) "
                        f"SELECT seq, text FROM {table} WHERE seq > ?",
                        (mark,),
                    )
                    self._exec("UPDATE search_indexed SET seq = ? WHERE name = ?", (newest, table))
                    mark = newest
                cache[table] = mark
