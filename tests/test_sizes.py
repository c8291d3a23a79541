"""Sizes and durations as people read and type them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.errors import ProfileError
from p2pchat.profile import open_profile
from p2pchat.sizes import format_duration, format_size, parse_size


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 bytes"), (1, "1 byte"), (999, "999 bytes"), (2_100_000, "2.1 MB"),
     (1 << 30, "1.1 GB"), (250_000_000, "250 MB"), (10**16, "10000 TB")],
)  # fmt: skip
def test_sizes_are_shown_in_decimal_units(size: int, shown: str) -> None:
    assert format_size(size) == shown


@pytest.mark.parametrize(
    ("typed", "size"),
    [("4096", 4096), ("10M", 10_000_000), ("10 MB", 10_000_000), ("1.5GiB", 3 << 29),
     ("500k", 500_000), ("2KiB", 2048)],
)  # fmt: skip
def test_typed_sizes(typed: str, size: int) -> None:
    assert parse_size(typed) == size


@pytest.mark.parametrize("typed", ["", "ten", "10X", "-1", "1e9", "10 M B"])
def test_what_is_not_a_size_is_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(typed)


@given(st.integers(min_value=0, max_value=10**18))
def test_any_size_can_be_shown(size: int) -> None:
    assert format_size(size)


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.2, "0 s"), (42, "42 s"), (187, "3:07"), (3723, "1:02:03")]
)
def test_durations(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_the_profile_says_which_files_are_accepted_unasked(tmp_path: Path) -> None:
    profile = open_profile(tmp_path / "p")
    assert profile.auto_accept_files() == 0  # off unless set
    assert profile.auto_accept_files("10M") == 10_000_000
    profile.update_config(auto_accept_files="2MiB")
    assert profile.auto_accept_files() == 2 << 20
    profile.update_config(auto_accept_files=4096)
    assert profile.auto_accept_files() == 4096
    for wrong in ("lots", -1, True, [1]):
        profile.update_config(auto_accept_files=wrong)
        with pytest.raises(ProfileError, match="auto_accept_files"):
            profile.auto_accept_files()
