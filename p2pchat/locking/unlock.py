"""Opening a locked key file with a passphrase from a source, a try at a time."""

from __future__ import annotations

from p2pchat.errors import ProfileError
from p2pchat.identity import LockedKey
from p2pchat.locking.passphrase import FORGOTTEN, PassphraseSource
from p2pchat.locking.sealed import Secrets, WrongPassphrase, unseal


def unlock(locked: LockedKey, source: PassphraseSource, profile_name: str) -> Secrets:
    """The secrets of ``locked``; ProfileError after ``source.tries`` wrong passphrases
    (saying plainly that a forgotten one cannot be recovered), IdentityError if the
    file is damaged."""
    for attempt in range(source.tries):
        passphrase = source.ask(f"Passphrase for {profile_name}: ")
        try:
            return unseal(locked.text, bytes(passphrase), where=f"the key file {locked.path}")
        except WrongPassphrase:
            source.wrong(source.tries - attempt - 1)
        finally:
            passphrase[:] = bytes(len(passphrase))
    tries = "passphrase" if source.tries == 1 else f"passphrase, {source.tries} times"
    raise ProfileError(f"wrong {tries}; nothing was opened or changed. {FORGOTTEN}")
