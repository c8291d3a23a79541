"""The one connection every table family of the store shares: transactions, savepoints,
the statement helpers, and how a failed statement becomes a StoreError (with disk
faults reported to a DiskHealth).

Every call is a few indexed statements (microseconds), so the trio thread calls it
directly. Times are integer milliseconds passed in by the caller; the store never
reads a clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from p2pchat.diskfaults import DISK_FULL, IO_ERROR, DiskHealth
from p2pchat.errors import StoreError
from p2pchat.store.codes import sqlite_code
from p2pchat.store.driver import sqlite as sqlite3

CHUNK = 500  # ids per statement, well under SQLite's limit on bound parameters


class StoreCore:
    """The connection and its transaction state; the table families build on it.

    ``health``, when set, hears of every write that fails because the disk is full or
    failing, and of the first write that works again (p2pchat.diskfaults).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, schema_version: int) -> None:
        self._conn = conn
        self._depth = 0
        self._faulty = False  # the last write failed for a disk fault
        self._aborted: str | None = None  # why SQLite rolled back the open transaction
        self.path = path
        self.schema_version = schema_version
        self.health: DiskHealth | None = None
        # Rows the table families keep in memory, by family; emptied on every rollback
        # (a row read inside a transaction that is undone must not outlive it).
        self._caches: dict[str, dict[Any, Any]] = {}

    # --- lifecycle and transactions -------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit (one fsync); roll back if the block raises.

        A nested call simply joins the outer transaction: nothing is committed until
        the outermost block ends. (No savepoint: they cost two statements each, and a
        batch of thousands of messages nests one per write. Use :meth:`savepoint` where
        a failure must be undone alone.)
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._exec("BEGIN IMMEDIATE")
        self._depth = 1
        self._aborted = None
        changes = self._conn.total_changes
        try:
            yield
            self._exec("COMMIT")
        except BaseException:
            self._forget_cached()
            with contextlib.suppress(sqlite3.Error):
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0
            self._aborted = None
        if self._conn.total_changes != changes:
            self._wrote()  # a commit that wrote nothing proves nothing about the disk

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: if the block raises, undo just the block's writes and let
        the transaction go on (the exception still propagates)."""
        if not self._depth:
            with self.transaction():
                yield
            return
        name = f"item_{self._depth:d}"
        self._exec(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._forget_cached()
            # If SQLite already rolled back the whole transaction (it does on some
            # errors), there is no savepoint left; the outer COMMIT will say so.
            with contextlib.suppress(StoreError):
                self._exec(f"ROLLBACK TO {name}")
                self._exec(f"RELEASE {name}")
            raise
        else:
            self._exec(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def _cache(self, family: str) -> dict[Any, Any]:
        """A table family's cache of rows (see ``_caches``)."""
        return self._caches.setdefault(family, {})

    def _forget_cached(self) -> None:
        for cache in self._caches.values():
            cache.clear()

    # --- statements -----------------------------------------------------------------

    def _exec(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        changes = self._before_write()
        try:
            cursor = self._conn.execute(sql, params)
        except sqlite3.Error as error:
            raise self._failure(error) from error
        self._after_write(changes)
        return cursor

    def _many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        changes = self._before_write()
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as error:
            raise self._failure(error) from error
        self._after_write(changes)

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise self._failure(error) from error

    def _one(self, sql: str, params: Sequence[object] = ()) -> Any:
        try:
            return self._conn.execute(sql, params).fetchone()
        except sqlite3.Error as error:
            raise self._failure(error) from error

    def _count(self, sql: str, params: Sequence[object] = ()) -> int:
        return int(self._one(sql, params)[0] or 0)

    def _page(
        self,
        columns: str,
        table: str,
        key_column: str,
        key: bytes,
        limit: int,
        before: tuple[int, bytes] | None,
    ) -> list[Any]:
        """The newest ``limit`` rows of one conversation or room before ``before``,
        oldest first. The row-value comparison is a range on the (key, clock, msg_id)
        index walked backwards: the cost is the page size, not the history's length."""
        where = f"{key_column} = ?"
        params: list[object] = [key]
        if before is not None:
            where += " AND (clock, msg_id) < (?, ?)"
            params += [before[0], before[1]]
        rows = self._all(
            f"SELECT {columns} FROM {table} WHERE {where} ORDER BY clock DESC, msg_id DESC LIMIT ?",
            (*params, limit),
        )
        rows.reverse()
        return rows

    # --- failures -------------------------------------------------------------------

    def _before_write(self) -> int:
        """Refuse a write into a dead transaction; the change count to compare after."""
        self._check_alive()
        return self._conn.total_changes

    def _after_write(self, changes_before: int) -> None:
        if not self._depth and self._faulty and self._conn.total_changes != changes_before:
            self._wrote()  # a statement of its own (autocommit) changed rows on disk

    def _check_alive(self) -> None:
        """Inside a transaction SQLite rolled back on its own (after a full disk, say), a
        further statement would run, and commit, on its own: refuse it instead, so a
        block is all or nothing even when a callee caught the first error."""
        if self._depth and self._aborted is not None:
            raise StoreError(
                f"message database {self.path}: the transaction was rolled back after an "
                "earlier error; nothing of it was stored",
                code=self._aborted,
            )

    def _failure(self, error: sqlite3.Error) -> StoreError:
        """The StoreError for a failed statement; a disk fault is also reported."""
        code = sqlite_code(error) or "store-error"
        if code in (DISK_FULL, IO_ERROR):
            where = "the disk is full" if code == DISK_FULL else "the disk failed (I/O error)"
            failure = StoreError(
                f"{where}: the message database {self.path} cannot be written ({error}); "
                "nothing of this change was stored",
                code=code,
            )
            self._faulty = True
            if self.health is not None:
                self.health.failed(str(self.path), failure)
        else:
            failure = StoreError(f"message database {self.path}: {error}", code=code)
        if self._depth and not self._conn.in_transaction:
            self._aborted = code
        return failure

    def _wrote(self) -> None:
        if self._faulty:
            self._faulty = False
            if self.health is not None:
                self.health.ok(str(self.path))


def clock_range(from_clock: int | None, below_clock: int | None) -> tuple[int, int]:
    """The clocks from ``from_clock`` (None: the first) up to ``below_clock`` (None:
    past the last), as bounds for ``clock >= ? AND clock < ?``."""
    return (-1 if from_clock is None else from_clock,
            2**63 - 1 if below_clock is None else below_clock)  # fmt: skip
