"""`p2pchat passphrase set|change|remove|status`: lock a profile with a passphrase,
change it, take it off (p2pchat.relock does it in place, crash-safe)."""

from __future__ import annotations

import argparse
import contextlib
import sys

from p2pchat.cli.common import EXIT_USAGE
from p2pchat.errors import ProfileError
from p2pchat.locking.passphrase import (
    FORGOTTEN,
    FromDescriptor,
    FromEnvironment,
    FromTerminal,
    PassphraseSource,
    default_source,
    keyring_set,
)
from p2pchat.profile import Profile, ProfileLock
from p2pchat.relock import relock

MIN_PASSPHRASE_CHARS = 8


def cmd_passphrase(profile: Profile, args: argparse.Namespace) -> int:
    if args.action == "status":
        print("locked with a passphrase" if profile.locked else "not locked")
        return 0
    wanted_lock = args.action in ("set", "change")
    if args.action == "set" and profile.locked:
        print("p2pchat: this profile is locked already: `passphrase change` changes it",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if args.action in ("change", "remove") and not profile.locked:
        print("p2pchat: this profile is not locked: `passphrase set` locks it", file=sys.stderr)
        return EXIT_USAGE
    with ProfileLock(profile.home):
        profile.secrets  # the current passphrase first (before typing a new one)  # noqa: B018
        new = _new_passphrase(args) if wanted_lock else None
        relock(profile, None if new is None else new.encode("utf-8"))
    if args.remember and new is not None:
        keyring_set(profile.home, new)
    else:
        # A passphrase kept there before opens nothing now (best effort: a machine
        # without a keyring has nothing to forget).
        with contextlib.suppress(ProfileError):
            keyring_set(profile.home, None)
    if args.action == "set":
        print(f"Locked. {profile.home} now opens only with the passphrase. {FORGOTTEN}")
    elif args.action == "change":
        print("Changed. The old passphrase opens nothing any more.")
    else:
        print(f"Unlocked: {profile.home} is no longer encrypted on disk.")
    return 0


def _new_passphrase(args: argparse.Namespace) -> str:
    source: PassphraseSource
    if args.new_passphrase_fd is not None:
        source = FromDescriptor(args.new_passphrase_fd)
    elif args.new_passphrase_env is not None:
        source = FromEnvironment(args.new_passphrase_env)
    else:
        source = default_source()
    typed = source.ask("New passphrase: ")
    try:
        text = typed.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError("the new passphrase is not valid UTF-8") from None
    finally:
        typed[:] = bytes(len(typed))
    if len(text) < MIN_PASSPHRASE_CHARS:
        raise ProfileError(
            f"a passphrase has at least {MIN_PASSPHRASE_CHARS} characters; nothing was changed"
        )
    if isinstance(source, FromTerminal):
        again = source.ask("The same again: ")
        same = bytes(again) == text.encode("utf-8")
        again[:] = bytes(len(again))
        if not same:
            raise ProfileError("the two passphrases differ; nothing was changed")
    return text
