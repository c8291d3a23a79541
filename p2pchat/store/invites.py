"""Invite tokens (contacts-only mode): the codes this node handed out that are not yet
redeemed. Only a hash of each token is kept (chat/invites.py)."""

from __future__ import annotations

from p2pchat.store.core import StoreCore


class InviteTables(StoreCore):
    """The ``invites`` table."""

    def add_invite(self, token_key: bytes, *, now: int, expires_at: int, keep: int) -> None:
        """Remember a token handed out in an invite code; at most ``keep`` are kept (the
        expired first, then the oldest, are forgotten to make room)."""
        with self.transaction():
            self._exec("DELETE FROM invites WHERE expires_at <= ?", (now,))
            self._exec(
                """DELETE FROM invites WHERE token_key IN (
                    SELECT token_key FROM invites ORDER BY created_at DESC, token_key
                    LIMIT -1 OFFSET ?)""",
                (max(0, keep - 1),),
            )
            self._exec(
                "INSERT INTO invites (token_key, created_at, expires_at) VALUES (?, ?, ?)",
                (token_key, now, expires_at),
            )

    def redeem_invite(self, token_key: bytes, *, now: int) -> bool:
        """Spend a token: True if it was outstanding and unexpired (it is gone now)."""
        cursor = self._exec(
            "DELETE FROM invites WHERE token_key = ? AND expires_at > ?", (token_key, now)
        )
        return cursor.rowcount > 0

    def invite_keys(self, *, now: int) -> list[bytes]:
        """The keys of the codes still outstanding (at most MAX_OUTSTANDING): what a
        hiding node takes a knock under, besides its announce key (§10.2)."""
        rows = self._all("SELECT token_key FROM invites WHERE expires_at > ?", (now,))
        return [bytes(row[0]) for row in rows]

    def count_invites(self, *, now: int) -> int:
        """Tokens still outstanding (unexpired)."""
        return self._count("SELECT count(*) FROM invites WHERE expires_at > ?", (now,))
