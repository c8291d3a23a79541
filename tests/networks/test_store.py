"""The networks a profile belongs to, in its store (§17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pchat.networks.keys import Network
from p2pchat.store import open_store
from p2pchat.store.networks import MAX_NETWORKS


def test_join_list_rename_and_leave(tmp_path: Path) -> None:
    store = open_store(tmp_path / "messages.db")
    home = Network("home", bytes([1]) * 32)
    assert store.add_network(home, now=1)
    assert not store.add_network(Network("again", home.key), now=2)  # one key, once
    with pytest.raises(ValueError, match="named 'home' already"):
        store.add_network(Network("home", bytes([2]) * 32), now=3)
    assert store.networks() == [home] and store.network("home") == home
    assert store.remove_network("home") and not store.remove_network("home")
    assert store.networks() == []
    for n in range(MAX_NETWORKS):
        store.add_network(Network(f"n{n}", bytes([n + 10]) * 32), now=4)
    with pytest.raises(ValueError, match="at most"):
        store.add_network(Network("one more", bytes([200]) * 32), now=5)
    store.close()


def test_a_row_no_network_can_have_is_left_out(tmp_path: Path) -> None:
    store = open_store(tmp_path / "messages.db")
    good = Network("home", bytes([1]) * 32)
    store.add_network(good, now=1)
    store._exec(  # written by hand, or by a bug: a name with a control character
        "INSERT INTO networks (network_id, name, key, added_at) VALUES (?, ?, ?, 1)",
        (bytes(8), "bad\x07name", bytes(32)),
    )
    assert store.networks() == [good]
    assert store.network("bad\x07name") is None
    store.close()
