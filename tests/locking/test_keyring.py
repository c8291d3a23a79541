"""The system keyring as a passphrase's source (``--passphrase-keyring``), with an
in-memory backend standing in for the desktop's secret store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import pytest

from p2pchat.errors import ProfileError
from p2pchat.locking.passphrase import KEYRING_SERVICE, FromKeyring, keyring_get, keyring_set
from p2pchat.profile import open_profile
from p2pchat.relock import relock


class MemoryKeyring(keyring.backend.KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.entries[(service, username)]


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    before = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(before)


def test_a_passphrase_kept_in_the_keyring_unlocks_the_profile(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    home = tmp_path / "ann"
    relock(open_profile(home), b"correct horse battery")
    profile = open_profile(home)
    profile.passphrase = FromKeyring(home)
    with pytest.raises(ProfileError, match="has no passphrase for"):
        _ = profile.identity
    keyring_set(home, "correct horse battery")
    assert memory_keyring.entries == {
        (KEYRING_SERVICE, str(home.absolute())): "correct horse battery"
    }
    assert profile.identity is not None
    keyring_set(home, None)
    assert keyring_get(home) is None and memory_keyring.entries == {}
    keyring_set(home, None)  # forgetting what is not there is no error


def test_a_keyring_that_fails_is_a_sentence_not_a_traceback(
    tmp_path: Path, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("the secret service is not running")

    monkeypatch.setattr(memory_keyring, "get_password", broken)
    with pytest.raises(ProfileError, match="cannot be read: the secret service is not running"):
        keyring_get(tmp_path)
