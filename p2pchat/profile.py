"""A profile: one directory holding one identity and its settings.

Selected by ``--home DIR``, else ``$P2PCHAT_HOME``, else the platform's user data
directory. The directory is private (0700) and the key file 0600.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import stat
from pathlib import Path
from typing import Any

import platformdirs

from p2pchat.diskfaults import DiskHealth
from p2pchat.errors import ProfileError
from p2pchat.identity import Identity, LockedKey, load_or_create_key
from p2pchat.locking.passphrase import NoSource, PassphraseSource
from p2pchat.locking.sealed import Secrets
from p2pchat.locking.unlock import unlock
from p2pchat.sizes import parse_size
from p2pchat.wire.messages import MAX_NICK_CHARS

HOME_ENV = "P2PCHAT_HOME"
KEY_FILE = "identity.key"
CONFIG_FILE = "config.json"
LOCK_FILE = "node.lock"


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("p2pchat", appauthor=False))


def resolve_home(cli_home: str | None) -> Path:
    if cli_home:
        return Path(cli_home).expanduser()
    env_home = os.environ.get(HOME_ENV)
    if env_home:
        return Path(env_home).expanduser()
    return default_home()


def validate_nick(nick: str) -> str:
    """Return a cleaned nick or raise ProfileError saying what is wrong with it."""
    cleaned = " ".join(nick.split())
    if not cleaned:
        raise ProfileError("a nick cannot be empty")
    if len(cleaned) > MAX_NICK_CHARS:
        raise ProfileError(f"a nick has at most {MAX_NICK_CHARS} characters")
    if any(not ch.isprintable() for ch in cleaned):
        raise ProfileError("a nick cannot contain control characters")
    return cleaned


def _default_nick() -> str:
    try:
        return validate_nick(getpass.getuser())
    except (ProfileError, OSError, KeyError):
        return "anonymous"


class Profile:
    """An open profile. A locked one (docs/architecture.md, "A locked profile") asks
    for its passphrase the first time its identity or database key is needed, through
    ``passphrase`` — so a command that only talks to a running node never asks."""

    def __init__(
        self,
        home: Path,
        identity: Identity | None = None,
        nick: str = "",
        created: bool = False,
        config: dict[str, Any] | None = None,
        health: DiskHealth | None = None,
        *,
        locked: LockedKey | None = None,
    ) -> None:
        if (identity is None) == (locked is None):
            raise ValueError("a profile has an identity or a locked key file, not both")
        self.home = home
        self.nick = nick
        self.created = created
        self.config: dict[str, Any] = config if config is not None else {}
        self.health = health
        self.locked_key = locked  # None: the profile is not locked
        self.passphrase: PassphraseSource = NoSource()  # set by the front end
        self._secrets = None if identity is None else Secrets(identity.seed)
        self._identity = identity

    @property
    def locked(self) -> bool:
        """Whether the profile is locked with a passphrase (unlocked or not yet)."""
        return self.locked_key is not None

    @property
    def secrets(self) -> Secrets:
        """The identity seed and database key, unlocking the profile first if need be."""
        if self._secrets is None:
            assert self.locked_key is not None
            self._secrets = unlock(self.locked_key, self.passphrase, str(self.home))
        return self._secrets

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            self._identity = Identity(self.secrets.seed)
        return self._identity

    @property
    def database_key(self) -> bytes | None:
        """The key of the message database (None: a plain file)."""
        return self.secrets.database_key if self.locked else None

    def relocked(self, secrets: Secrets, locked: LockedKey | None) -> None:
        """The profile's lock was put on, changed or taken off (p2pchat.relock)."""
        self.locked_key = locked
        self._secrets = secrets

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    def flag(self, name: str) -> bool:
        """A true/false setting of config.json (absent: false); ProfileError if it is
        something else, so a typo never silently turns a privacy setting off."""
        value = self.config.get(name, False)
        if not isinstance(value, bool):
            raise ProfileError(
                f'"{name}" in {self.config_path} must be true or false, not {value!r}'
            )
        return value

    def downloads(self, given: str | None = None) -> Path:
        """Where received files go: ``given`` (--downloads), else config.json's
        "downloads", else the system's downloads folder for the default profile and
        ``downloads`` inside any other (two profiles on one machine keep apart)."""
        chosen = given if given is not None else self.config.get("downloads")
        if chosen is not None:
            if not isinstance(chosen, str) or not chosen:
                raise ProfileError(f'"downloads" in {self.config_path} must be a folder\'s path')
            return Path(chosen).expanduser()
        if self.home == default_home():
            return Path(platformdirs.user_downloads_dir())
        return self.home / "downloads"

    def auto_accept_files(self, given: str | None = None) -> int:
        """Bytes up to which a contact's file is accepted without asking: ``given``
        (--auto-accept-files), else config.json's "auto_accept_files" (a number of
        bytes or a size such as "10M"), else 0: never."""
        chosen = given if given is not None else self.config.get("auto_accept_files", 0)
        if isinstance(chosen, int) and not isinstance(chosen, bool) and chosen >= 0:
            return chosen
        try:
            if isinstance(chosen, str):
                return parse_size(chosen)
        except ValueError:
            pass
        raise ProfileError(
            f'"auto_accept_files" in {self.config_path} must be a size such as "10M", '
            f"not {chosen!r}"
        )

    def set_nick(self, nick: str) -> None:
        self.nick = validate_nick(nick)
        self.update_config(nick=self.nick)

    def update_config(self, **changes: Any) -> None:
        """Save ``changes`` to config.json; ProfileError (nothing saved) if it cannot be
        written. ``health`` hears of a full or failing disk, and of the recovery."""
        config = _read_config(self.config_path)
        config.update(changes)
        try:
            _write_config(self.config_path, config)
        except ProfileError as error:
            if self.health is not None:
                self.health.failed(str(self.config_path), error)
            raise
        if self.health is not None:
            self.health.ok(str(self.config_path))
        self.config = config


class ProfileLock:
    """Held while a node runs on a profile: one identity must not run twice at once."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ProfileError(
                f"cannot create the lock file {self.path}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ProfileError(
                f"p2pchat is already running with the profile {self.path.parent} "
                f"(pid {holder}); stop it first, or choose another profile with --home"
            ) from None
        # The pid only helps the message above; the lock is the flock. A full disk may
        # refuse the few bytes: the lock holds all the same.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> ProfileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def open_profile(home: Path) -> Profile:
    """Open (creating on first use) the profile in ``home``."""
    _ensure_private_dir(home)
    key, created = load_or_create_key(home / KEY_FILE)
    config = _read_config(home / CONFIG_FILE)
    if created and "private_discovery" not in config:
        # New profiles announce privately (docs/protocol.md §10.2): nobody on the
        # network learns who they are until they choose otherwise. Older profiles keep
        # what they had (the key is absent from their config: public).
        config["private_discovery"] = True
        with contextlib.suppress(ProfileError):  # a full disk: this run is private still
            _write_config(home / CONFIG_FILE, config)
    nick_value = config.get("nick")
    nick = _default_nick()
    if isinstance(nick_value, str):
        # A hand-edited bad nick falls back to the default rather than locking the user out.
        with contextlib.suppress(ProfileError):
            nick = validate_nick(nick_value)
    if isinstance(key, LockedKey):
        return Profile(home, nick=nick, created=created, config=config, locked=key)
    return Profile(home, key, nick=nick, created=created, config=config)


def _ensure_private_dir(home: Path) -> None:
    if home.exists() and not home.is_dir():
        raise ProfileError(f"the profile path {home} is a file, not a directory")
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(home.stat().st_mode) & 0o077:
            os.chmod(home, 0o700)
    except OSError as exc:
        raise ProfileError(f"cannot use the profile directory {home}: {exc.strerror}") from exc


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read the profile configuration {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(
            f"the profile configuration {path} is not valid JSON (line {exc.lineno}): "
            "fix or remove it"
        ) from exc
    if not isinstance(data, dict):
        raise ProfileError(f"the profile configuration {path} must hold a JSON object")
    return data


def _write_config(path: Path, config: dict[str, Any]) -> None:
    """Write-then-rename, so a crash or a full disk never leaves a half-written
    configuration: the old file stands until the new one is complete."""
    tmp = path.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()  # a partial temporary file would only take the space left
        raise ProfileError(
            f"cannot save the profile configuration {path}: {exc.strerror or exc}; "
            "it was left as it was, and the change is not saved"
        ) from exc
