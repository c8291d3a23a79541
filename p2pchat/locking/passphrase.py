"""Where a locked profile's passphrase comes from: the terminal (asked, never echoed,
three tries), a file descriptor, an environment variable, or the system keyring. Never
the command line: any user on the machine can read another's arguments (``ps``).

A source hands over bytes (UTF-8 of what was typed, without the line end). Python
cannot promise a secret leaves no copy in memory (strings are immutable, the garbage
collector moves nothing but frees late); what is read from a descriptor goes into a
bytearray that is wiped once the key file is open (docs/security.md, "Memory").
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from p2pchat.errors import ProfileError

KEYRING_SERVICE = "p2pchat"
MAX_PASSPHRASE_BYTES = 1024  # more is not a passphrase (and Argon2id would hash it all)
TERMINAL_TRIES = 3

FORGOTTEN = (
    "If the passphrase is forgotten, nothing in this profile can be recovered (not the "
    "messages, not the identity): there is no back door. A new profile (--home DIR) "
    "starts afresh with a new identity."
)


class PassphraseSource(Protocol):
    """Asked for the passphrase up to ``tries`` times; told when one was wrong."""

    tries: int

    def ask(self, prompt: str) -> bytearray: ...

    def wrong(self, tries_left: int) -> None: ...


def _checked(value: bytes | bytearray, where: str) -> bytearray:
    data = bytearray(value)
    while data.endswith((b"\n", b"\r")):
        del data[-1:]
    if not data:
        raise ProfileError(f"the passphrase from {where} is empty")
    if len(data) > MAX_PASSPHRASE_BYTES:
        raise ProfileError(f"the passphrase from {where} is over {MAX_PASSPHRASE_BYTES} bytes")
    return data


@dataclass
class FromTerminal:
    """Asked on the terminal without echo (``getpass``), three tries."""

    tries: int = TERMINAL_TRIES
    read: Callable[[str], str] = getpass.getpass

    def ask(self, prompt: str) -> bytearray:
        try:
            typed = self.read(prompt)
        except EOFError:
            raise ProfileError("no passphrase was typed") from None
        return _checked(typed.encode("utf-8"), "the terminal")

    def wrong(self, tries_left: int) -> None:
        if tries_left:
            print(
                f"Wrong passphrase. {tries_left} {'try' if tries_left == 1 else 'tries'} left.",
                file=sys.stderr,
            )


@dataclass
class FromDescriptor:
    """Read from an open file descriptor up to its end or first line end (a pipe,
    ``3<file``); one try."""

    fd: int
    tries: int = 1

    def ask(self, prompt: str) -> bytearray:
        data = bytearray()
        try:
            while len(data) <= MAX_PASSPHRASE_BYTES and b"\n" not in data:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    break
                data += chunk
        except OSError as error:
            raise ProfileError(
                f"cannot read the passphrase from descriptor {self.fd}: {error.strerror}"
            ) from None
        line = data.split(b"\n", 1)[0]
        data[:] = bytes(len(data))  # wiped; only the line is kept
        return _checked(line, f"descriptor {self.fd}")

    def wrong(self, tries_left: int) -> None:
        pass


@dataclass
class FromEnvironment:
    """The value of an environment variable named on the command line (the value never
    is); taken out of the environment once read, so programs we start do not inherit
    it. One try."""

    name: str
    tries: int = 1

    def ask(self, prompt: str) -> bytearray:
        value = os.environ.pop(self.name, None)
        if value is None:
            raise ProfileError(f"the environment variable {self.name} is not set")
        return _checked(value.encode("utf-8"), f"${self.name}")

    def wrong(self, tries_left: int) -> None:
        pass


@dataclass
class FromKeyring:
    """The system keyring's entry for this profile (service ``p2pchat``, the profile's
    folder as the user name); one try."""

    home: Path
    tries: int = 1

    def ask(self, prompt: str) -> bytearray:
        value = keyring_get(self.home)
        if value is None:
            raise ProfileError(
                f"the system keyring has no passphrase for {self.home} (save one with "
                "`p2pchat passphrase change --remember`)"
            )
        return _checked(value.encode("utf-8"), "the system keyring")

    def wrong(self, tries_left: int) -> None:
        pass


def keyring_get(home: Path) -> str | None:
    keyring = _keyring()
    try:
        value = keyring.get_password(KEYRING_SERVICE, str(home.absolute()))
    except Exception as error:  # any backend's failure: keyring has no common base
        raise ProfileError(f"the system keyring cannot be read: {error}") from None
    return value if isinstance(value, str) else None


def keyring_set(home: Path, passphrase: str | None) -> None:
    """Save (or with None, forget) the profile's passphrase in the system keyring."""
    keyring = _keyring()
    try:
        if passphrase is None:
            if keyring.get_password(KEYRING_SERVICE, str(home.absolute())) is not None:
                keyring.delete_password(KEYRING_SERVICE, str(home.absolute()))
        else:
            keyring.set_password(KEYRING_SERVICE, str(home.absolute()), passphrase)
    except Exception as error:  # any backend's failure
        raise ProfileError(f"the system keyring cannot be written: {error}") from None


def _keyring() -> Any:
    try:
        import keyring
    except ImportError:  # pragma: no cover - a dependency
        raise ProfileError("the keyring package is not installed") from None
    return keyring


class NoSource:
    """No way to ask: not a terminal, and no --passphrase-… option given."""

    tries = 1

    def ask(self, prompt: str) -> bytearray:
        raise ProfileError(
            "this profile is locked with a passphrase, and there is no terminal to ask "
            "it on: give it with --passphrase-fd N, --passphrase-env NAME or "
            "--passphrase-keyring (never on the command line)"
        )

    def wrong(self, tries_left: int) -> None:
        pass


def default_source() -> PassphraseSource:
    """The terminal if this process has one to ask on (getpass reads /dev/tty), else
    none."""
    try:
        with open("/dev/tty"):
            return FromTerminal()
    except OSError:
        return NoSource()
