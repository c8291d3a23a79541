"""Locking a profile in place, changing the passphrase, taking it off
(p2pchat.relock): what it leaves on disk, and that a stop at any step leaves
the old profile or the new one whole — never neither, never a mix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2pchat.discovery.known import KNOWN_FILE, KnownPeers
from p2pchat.errors import IdentityError, ProfileError, StoreError
from p2pchat.locking.passphrase import FromTerminal
from p2pchat.profile import CONFIG_FILE, KEY_FILE, Profile, open_profile
from p2pchat.relock import STAGED, relock
from p2pchat.store import DATABASE_FILE, Store, open_store

FRIEND = bytes(range(1, 33))
TEXT = "meet me at the old mill at nine"
NICK = "Zorro Quixote"


class Stop(Exception):
    """A crash, as far as the files are concerned: nothing after it runs."""


def typed(*answers: str) -> FromTerminal:
    """A terminal on which these are typed, in turn (and a record of what it said)."""
    queue = list(answers)
    return FromTerminal(read=lambda prompt: queue.pop(0))


def opened(home: Path, *answers: str) -> Profile:
    profile = open_profile(home)
    profile.passphrase = typed(*answers)
    return profile


def store_of(profile: Profile) -> Store:
    from p2pchat.relock import finish_relock

    finish_relock(profile.home, profile.database_key)
    return open_store(profile.home / DATABASE_FILE, key=profile.database_key)


def fill(profile: Profile) -> None:
    with store_of(profile) as store:
        store.add_contact(FRIEND, petname=NICK, now=1)
        store.add_outgoing(msg_id=os.urandom(16), peer=FRIEND, sender=profile.identity.public_key,
                           clock=1, sent_at=1, text=TEXT, next_attempt_at=1)  # fmt: skip
    KnownPeers(profile.home / KNOWN_FILE, key=profile.database_key).remember(
        "a" * 52, "198.18.0.7:4000", NICK
    )


def holds_everything(profile: Profile) -> bool:
    with store_of(profile) as store:
        [contact] = store.contacts()
        [message] = store.history(FRIEND)
        assert (contact.petname, message.text) == (NICK, TEXT)
    known = KnownPeers(profile.home / KNOWN_FILE, key=profile.database_key)
    assert known.nick("a" * 52) == NICK
    return True


def raw_bytes(home: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(home.iterdir()) if path.is_file())


def test_locking_encrypts_every_file_and_the_passphrase_opens_them(tmp_path: Path) -> None:
    home = tmp_path / "ann"
    profile = opened(home)
    seed = profile.identity.seed
    fill(profile)
    assert TEXT.encode() in raw_bytes(home) and NICK.encode() in raw_bytes(home)  # plain before
    relock(profile, b"correct horse battery")
    assert profile.locked and profile.identity.seed == seed
    assert sorted(p.name for p in home.iterdir()) == sorted(
        [KEY_FILE, DATABASE_FILE, KNOWN_FILE, CONFIG_FILE]
    )
    assert (home / CONFIG_FILE).read_text().split() == ["{", '"private_discovery":', "true", "}"]
    everything = raw_bytes(home)
    for secret in (TEXT.encode(), NICK.encode(), seed, seed.hex().encode(), b"198.18.0.7"):
        assert secret not in everything
    again = opened(home, "correct horse battery")
    assert again.locked and again.identity.seed == seed
    assert holds_everything(again)


def test_change_and_remove_keep_everything_and_the_old_passphrase_opens_nothing(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ann"
    profile = opened(home)
    fill(profile)
    relock(profile, b"first passphrase")
    first_key = profile.database_key
    relock(opened(home, "first passphrase"), b"second passphrase")
    changed = opened(home, "second passphrase")
    assert changed.database_key != first_key  # a new database key with a new passphrase
    assert holds_everything(changed)
    with pytest.raises(ProfileError, match="wrong passphrase"):
        _ = opened(home, "first passphrase", "first passphrase", "first passphrase").identity
    relock(opened(home, "second passphrase"), None)
    plain = opened(home)
    assert not plain.locked and holds_everything(plain)
    assert TEXT.encode() in raw_bytes(home) or TEXT.encode() in (home / DATABASE_FILE).read_bytes()


@pytest.mark.parametrize("stop_at", ["database copied", "key file written", "committed"])
@pytest.mark.parametrize("change", ["set", "change", "remove"])
def test_a_stop_at_any_step_leaves_the_old_profile_or_the_new_one(
    tmp_path: Path, change: str, stop_at: str
) -> None:
    home = tmp_path / "ann"
    profile = opened(home)
    fill(profile)
    old_passphrase = None
    if change in ("change", "remove"):
        relock(profile, b"the old passphrase")
        old_passphrase = "the old passphrase"
    new_passphrase = None if change == "remove" else "the new passphrase"

    def step(name: str) -> None:
        if name == stop_at:
            raise Stop

    with pytest.raises(Stop):
        relock(opened(home, *([old_passphrase] if old_passphrase else [])),
               None if new_passphrase is None else new_passphrase.encode(), step)  # fmt: skip
    committed = stop_at == "committed"
    expected = new_passphrase if committed else old_passphrase
    after = opened(home, *([expected] if expected else []))
    assert after.locked == (expected is not None)
    assert holds_everything(after)  # finishes (or undoes) the change, then opens
    assert not any(path.name.endswith(STAGED) for path in home.iterdir())
    # The other passphrase (or none) opens nothing.
    other = old_passphrase if committed else new_passphrase
    if other is not None and after.locked:
        with pytest.raises(ProfileError):
            _ = opened(home, other, other, other).identity


def test_three_wrong_passphrases_on_the_terminal_and_a_plain_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "ann"
    relock(opened(home), b"correct horse battery")
    profile = opened(home, "one", "two", "three", "correct horse battery")
    with pytest.raises(ProfileError) as caught:
        _ = profile.identity
    said = str(caught.value)
    assert "wrong passphrase, 3 times" in said and "nothing was opened or changed" in said
    assert "nothing in this profile can be recovered" in said
    assert capsys.readouterr().err.count("Wrong passphrase.") == 2  # "2 tries left", "1 try left"
    # The right one on a later try works.
    assert opened(home, "nope", "correct horse battery").identity is not None


def test_an_empty_passphrase_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    home = tmp_path / "ann"
    relock(opened(home), b"correct horse battery")
    before = (home / KEY_FILE).read_bytes()
    with pytest.raises(ProfileError, match="empty"):
        _ = opened(home, "").identity
    assert (home / KEY_FILE).read_bytes() == before


def test_a_damaged_locked_key_file_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    home = tmp_path / "ann"
    relock(opened(home), b"correct horse battery")
    key_file = home / KEY_FILE
    header, body = key_file.read_text().split("\n")[:2]
    key_file.write_text(f"{header}\n{body[:40]}\n")
    before = key_file.read_bytes()
    with pytest.raises(IdentityError, match="damaged"):
        _ = opened(home, "correct horse battery").identity
    assert key_file.read_bytes() == before


def test_a_truncated_encrypted_database_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    home = tmp_path / "ann"
    profile = opened(home)
    fill(profile)
    relock(profile, b"correct horse battery")
    database = home / DATABASE_FILE
    data = database.read_bytes()
    database.write_bytes(data[: len(data) // 2 + 100])
    before = database.read_bytes()
    with pytest.raises(StoreError) as caught:
        store_of(opened(home, "correct horse battery"))
    assert caught.value.code == "damaged" and "left untouched" in str(caught.value)
    assert database.read_bytes() == before


def test_a_plain_database_under_a_locked_key_file_is_not_opened_as_if_encrypted(
    tmp_path: Path,
) -> None:
    # A plain copy put back by hand: refused (never silently used or overwritten).
    home = tmp_path / "ann"
    profile = opened(home)
    fill(profile)
    plain = (home / DATABASE_FILE).read_bytes()
    relock(profile, b"correct horse battery")
    (home / DATABASE_FILE).write_bytes(plain)
    with pytest.raises(StoreError) as caught:
        store_of(opened(home, "correct horse battery"))
    assert caught.value.code == "damaged"
    assert (home / DATABASE_FILE).read_bytes() == plain


def test_a_new_profile_locked_before_its_first_start_gets_an_encrypted_database(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ann"
    relock(opened(home), b"correct horse battery")  # no database yet
    assert not (home / DATABASE_FILE).exists()
    profile = opened(home, "correct horse battery")
    fill(profile)
    assert TEXT.encode() not in raw_bytes(home)
    assert holds_everything(opened(home, "correct horse battery"))
