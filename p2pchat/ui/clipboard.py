"""Copying text to the clipboard with OSC 52, only where the terminal is known to take it.

OSC 52 is an escape sequence that asks the terminal to set the clipboard. Many
terminals ignore it, or ask first, and nothing tells the program whether it worked; so
the window says "copied" only where it is known to work, and otherwise says how to
select the text. Known to work (docs/ui.md):

- an explicit setting: ``P2PCHAT_CLIPBOARD=osc52`` (or ``=off`` to never try);
- inside tmux, only with ``set-clipboard on`` (tmux's default, ``external``, ignores
  programs that set the clipboard);
- terminals that accept OSC 52 by default: kitty, WezTerm, Ghostty, foot, Alacritty,
  Windows Terminal. Inside GNU screen, never.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from typing import Protocol

SETTING = "P2PCHAT_CLIPBOARD"
KNOWN_PROGRAMS = frozenset({"WezTerm", "ghostty", "kitty"})  # $TERM_PROGRAM
KNOWN_TERMS = ("xterm-kitty", "xterm-ghostty", "wezterm", "foot", "alacritty")  # $TERM prefixes


class CanCopy(Protocol):
    def copy_to_clipboard(self, text: str) -> None: ...


def tmux_set_clipboard() -> str | None:
    """tmux's ``set-clipboard`` option (on, external, off), or None if unknown."""
    try:
        done = subprocess.run(
            ["tmux", "show-options", "-sv", "set-clipboard"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def osc52_works(
    env: Mapping[str, str], tmux_option: Callable[[], str | None] = tmux_set_clipboard
) -> bool:
    """Whether a terminal described by ``env`` is known to take OSC 52."""
    setting = env.get(SETTING, "").strip().lower()
    if setting in ("osc52", "on", "yes", "1"):
        return True
    if setting in ("off", "no", "0"):
        return False
    if env.get("TMUX"):
        return tmux_option() == "on"
    if env.get("STY"):  # GNU screen passes nothing on
        return False
    if env.get("TERM_PROGRAM", "") in KNOWN_PROGRAMS or env.get("WT_SESSION"):
        return True
    return env.get("TERM", "").startswith(KNOWN_TERMS)


def copy(target: CanCopy, text: str, env: Mapping[str, str] | None = None) -> bool:
    """Copy ``text`` with OSC 52 if the terminal is known to take it; whether it did."""
    if not osc52_works(os.environ if env is None else env):
        return False
    target.copy_to_clipboard(text)
    return True
