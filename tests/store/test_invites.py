"""The invite tokens a node handed out: bounded, expiring, redeemed once."""

from __future__ import annotations

from p2pchat.store import Store


def key(n: int) -> bytes:
    return n.to_bytes(16, "big")


def test_a_token_is_redeemed_once(store: Store) -> None:
    store.add_invite(key(1), now=100, expires_at=1_000, keep=64)
    assert store.count_invites(now=100) == 1
    assert store.redeem_invite(key(1), now=500)
    assert not store.redeem_invite(key(1), now=501)
    assert store.count_invites(now=501) == 0


def test_an_unknown_token_redeems_nothing(store: Store) -> None:
    store.add_invite(key(1), now=100, expires_at=1_000, keep=64)
    assert not store.redeem_invite(key(2), now=200)
    assert store.count_invites(now=200) == 1


def test_an_expired_token_is_no_admission(store: Store) -> None:
    store.add_invite(key(1), now=100, expires_at=1_000, keep=64)
    assert not store.redeem_invite(key(1), now=1_000)  # expiry is exclusive
    assert store.count_invites(now=1_000) == 0


def test_at_most_keep_tokens_are_outstanding_and_the_oldest_go(store: Store) -> None:
    for n in range(100):
        store.add_invite(key(n), now=1_000 + n, expires_at=10_000, keep=64)
    assert store.count_invites(now=2_000) == 64
    rows = store._conn.execute("SELECT count(*) FROM invites").fetchone()[0]
    assert rows == 64
    assert not store.redeem_invite(key(35), now=2_000)  # among the 36 oldest: dropped
    assert store.redeem_invite(key(36), now=2_000)  # the oldest still kept
    assert store.redeem_invite(key(99), now=2_000)


def test_expired_tokens_go_first_and_free_their_place(store: Store) -> None:
    store.add_invite(key(1), now=100, expires_at=200, keep=2)
    store.add_invite(key(2), now=150, expires_at=10_000, keep=2)
    store.add_invite(key(3), now=300, expires_at=10_000, keep=2)  # key(1) has expired
    assert store.redeem_invite(key(2), now=400)
    assert store.redeem_invite(key(3), now=400)
