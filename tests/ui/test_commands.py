from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.ui.commands import (
    COMMANDS,
    Command,
    CommandError,
    complete,
    literal_text,
    parse,
    resolve_peer,
    split_status,
    split_target,
)

BOB_1 = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
BOB_2 = "abcexxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
CAROL = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
PEOPLE = [(BOB_1, "bob"), (BOB_2, "Bob"), (CAROL, "carol")]


def test_table_is_consistent() -> None:
    for name, spec in COMMANDS.items():
        assert spec.name == name
        assert spec.usage.split()[0] == f"/{name}"
        assert spec.help and spec.takes in {
            "",
            "peer",
            "text",
            "peer text",
            "status",
            "code",
            "path",
        }
    expected = "help nick status away back msg connect invite accept block unblock verify peers"
    assert set(expected.split()) | {"quit"} <= set(COMMANDS)


@pytest.mark.parametrize("line", ["hello", "", " /nick bob", "//nick bob", "//", "a/b"])
def test_plain_text_is_not_a_command(line: str) -> None:
    assert parse(line) is None


def test_double_slash_sends_the_literal_text() -> None:
    assert literal_text("//shrug") == "/shrug"
    assert literal_text("///") == "//"
    assert literal_text("hello /you") == "hello /you"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/help", Command("help", "")),
        ("/HELP", Command("help", "")),
        ("/nick  alice ", Command("nick", "alice")),
        ("/msg bob hello there", Command("msg", "bob hello there")),
        ("/msg\tbob hi", Command("msg", "bob hi")),
        ("/msg bob line one\nline two", Command("msg", "bob line one\nline two")),
        ("/status away in a meeting", Command("status", "away in a meeting")),
        ("/away", Command("away", "")),
        ("/verify", Command("verify", "")),
        ("/connect 192.168.1.4:7777", Command("connect", "192.168.1.4:7777")),
        ("/quit", Command("quit", "")),
    ],
)
def test_parse(line: str, expected: Command) -> None:
    assert parse(line) == expected


def test_unknown_command_suggests_the_closest() -> None:
    with pytest.raises(CommandError) as caught:
        parse("/nik bob")
    assert str(caught.value) == "unknown command /nik — did you mean /nick? /help lists them"


def test_unknown_command_without_a_close_match_mentions_double_slash() -> None:
    with pytest.raises(CommandError, match="//") as caught:
        parse("/usr/local/bin is on the path")
    assert str(caught.value).startswith("unknown command /usr/local/bin — /help lists them")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/msg", "usage: /msg NICK-OR-ID [TEXT]"),
        ("/msg   ", "usage: /msg NICK-OR-ID [TEXT]"),
        ("/nick", "usage: /nick NAME"),
        ("/block", "usage: /block NICK-OR-ID"),
        ("/connect", "usage: /connect CODE|HOST:PORT"),
        ("/status", "usage: /status avail|away|dnd [TEXT]"),
        ("/status sleepy", "usage: /status avail|away|dnd [TEXT]"),
    ],
)
def test_missing_arguments_show_the_usage(line: str, message: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse(line)
    assert str(caught.value) == message


@pytest.mark.parametrize("line", ["/", "/ nick", "/\n"])
def test_a_bare_slash_is_an_error(line: str) -> None:
    with pytest.raises(CommandError, match="/help"):
        parse(line)


@given(st.text())
def test_parse_raises_nothing_but_command_error(line: str) -> None:
    try:
        result = parse(line)
    except CommandError as error:
        assert str(error)
    else:
        assert result is None or result.name in COMMANDS


@given(st.sampled_from(sorted(COMMANDS)), st.text())
def test_parse_of_a_known_command_keeps_its_arguments(name: str, args: str) -> None:
    try:
        result = parse(f"/{name} {args}")
    except CommandError as error:
        assert str(error).startswith("usage: ")
    else:
        assert result == Command(name, args.strip())


def test_split_target() -> None:
    assert split_target("bob hello there") == ("bob", "hello there")
    assert split_target("  bob   hello  there ") == ("bob", "hello  there")
    assert split_target("bob") == ("bob", "")
    assert split_target("") == ("", "")


def test_split_status() -> None:
    assert split_status("avail") == ("avail", "")
    assert split_status("Busy on a call") == ("dnd", "on a call")
    assert split_status("available") == ("avail", "")
    with pytest.raises(CommandError):
        split_status("asleep")


def test_complete_command_names() -> None:
    assert complete("/ni", []) == ["/nick "]
    assert complete("/NI", []) == ["/nick "]
    assert complete("/b", []) == ["/back ", "/block "]
    assert complete("/", []) == [f"/{name} " for name in sorted(COMMANDS)]
    assert complete("/zz", []) == []


def test_complete_peers() -> None:
    people = ["bob", "bea", "carol"]
    assert complete("/msg b", people) == ["/msg bea ", "/msg bob "]
    assert complete("/msg B", people) == ["/msg bea ", "/msg bob "]
    assert complete("/msg ", people) == ["/msg bea ", "/msg bob ", "/msg carol "]
    assert complete("/block car", people) == ["/block carol "]
    assert complete("/verify x", people) == []


def test_complete_is_case_insensitive_and_sorted() -> None:
    assert complete("/msg a", ["anna", "Alex", "anna", "Ben"]) == ["/msg Alex ", "/msg anna "]


def test_complete_status_words() -> None:
    assert complete("/status a", []) == ["/status avail ", "/status away "]


@pytest.mark.parametrize(
    "line", ["", "hello", "b", "//ms", "/msg bob hi", "/msg bob ", "/nick b", "/nope b"]
)
def test_nothing_to_complete(line: str) -> None:
    assert complete(line, ["bob", "bea"]) == []


@given(st.text(), st.lists(st.text()))
def test_completions_extend_the_line(line: str, candidates: list[str]) -> None:
    typed = line.casefold().split()
    for completion in complete(line, candidates):
        assert completion.endswith(" ")
        offered = completion.casefold().split()
        assert len(offered) >= len(typed)
        assert all(full.startswith(part) for full, part in zip(offered, typed, strict=False))


def test_resolve_by_nick_id_and_prefix() -> None:
    assert resolve_peer("carol", PEOPLE) == CAROL
    assert resolve_peer("CAROL", PEOPLE) == CAROL
    assert resolve_peer(BOB_1, PEOPLE) == BOB_1
    assert resolve_peer(BOB_1.upper(), PEOPLE) == BOB_1
    assert resolve_peer("abcd", PEOPLE) == BOB_1
    assert resolve_peer("zzzz", PEOPLE) == CAROL


def test_resolve_nobody() -> None:
    with pytest.raises(CommandError) as caught:
        resolve_peer("x", PEOPLE)
    assert str(caught.value) == "nobody called 'x' — /peers lists who is around"


def test_short_prefixes_do_not_match() -> None:
    with pytest.raises(CommandError, match="nobody called 'abc'"):
        resolve_peer("abc", PEOPLE)


def test_resolve_ambiguous_nick_lists_both_with_distinct_ids() -> None:
    with pytest.raises(CommandError) as caught:
        resolve_peer("bob", PEOPLE)
    assert str(caught.value) == "'bob' could be 2 people: Bob (abce…), bob (abcd…); use the id"


def test_ambiguity_shows_enough_of_the_ids_to_tell_them_apart() -> None:
    first, second = "q" * 10 + "a" * 42, "q" * 10 + "b" * 42
    with pytest.raises(CommandError) as caught:
        resolve_peer("dup", [(first, "dup"), (second, "dup")])
    assert f"({first[:11]}…)" in str(caught.value)
    assert f"({second[:11]}…)" in str(caught.value)


def test_a_nick_that_looks_like_an_id_prefix_is_ambiguous() -> None:
    # Someone naming themselves after a friend's id prefix must not capture /block abcd.
    with pytest.raises(CommandError, match="could be 2 people"):
        resolve_peer("abcd", [*PEOPLE, (CAROL[:-1] + "a", "abcd")])


def test_the_same_person_listed_twice_is_not_ambiguous() -> None:
    assert resolve_peer("carol", [(CAROL, "carol"), (CAROL, "carol")]) == CAROL


def test_an_empty_query_is_an_error() -> None:
    with pytest.raises(CommandError):
        resolve_peer("  ", PEOPLE)
