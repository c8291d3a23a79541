"""The daemon and ping commands, as a user runs them (real processes on 127.0.0.1)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from p2pchat.identity import decode_peer_id
from p2pchat.store import DATABASE_FILE, open_store


def p2pchat(*args: str) -> list[str]:
    return [sys.executable, "-m", "p2pchat", *args]


@contextmanager
def daemon(home: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, object]]]:
    # Public unless asked: these daemons meet as strangers (new profiles default to
    # private discovery, which answers no stranger, docs/protocol.md §10.2).
    visibility = () if "--private-discovery" in extra else ("--public-discovery",)
    arguments = ["daemon", "--listen", "127.0.0.1:0", "--no-mdns", *visibility, *extra]
    process = subprocess.Popen(
        p2pchat("--home", str(home), *arguments),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        if "--json" in extra:
            info = json.loads(first)
        else:
            assert first.startswith("listening on 127.0.0.1:"), first
            info = {"addresses": [first.split()[-1]]}
        yield process, info
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
            process.kill()
            raise


def test_daemon_json_first_line_and_ping(tmp_path: Path) -> None:
    with daemon(tmp_path / "a", "--json", "--nick", "alice") as (process, info):
        assert info["event"] == "listening"
        assert info["nick"] == "alice"
        address = str(info["addresses"][0])  # type: ignore[index]
        decode_peer_id(str(info["id"]))
        result = subprocess.run(
            p2pchat(
                "--home",
                str(tmp_path / "b"),
                "ping",
                address,
                "--count",
                "3",
                "--interval",
                "0",
                "--json",
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["id"] == info["id"]
        assert len(summary["rtt_ms"]) == 3
        assert 0 < summary["min_ms"] <= summary["avg_ms"] <= summary["max_ms"] < 1000
        assert process.stdout is not None
        events = [json.loads(process.stdout.readline()) for _ in range(2)]
        assert [e["event"] for e in events] == ["connected", "disconnected"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert json.loads(process.stdout.readline())["event"] == "stopped"


@pytest.mark.slow
def test_ping_text_output_and_expected_identity(tmp_path: Path) -> None:
    with daemon(tmp_path / "a") as (_, info):
        address = str(info["addresses"][0])  # type: ignore[index]
        server_id = json.loads(
            subprocess.run(
                p2pchat("--home", str(tmp_path / "a"), "id", "--json"),
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        )["id"]
        ok = subprocess.run(
            p2pchat(
                "--home",
                str(tmp_path / "b"),
                "ping",
                address,
                "-c",
                "2",
                "-i",
                "0",
                "--expect",
                server_id,
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ok.returncode == 0, ok.stderr
        assert server_id in ok.stdout and "pong 2: time=" in ok.stdout
        other_id = json.loads(
            subprocess.run(
                p2pchat("--home", str(tmp_path / "c"), "id", "--json"),
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        )["id"]
        wrong = subprocess.run(
            p2pchat("--home", str(tmp_path / "b"), "ping", address, "--expect", other_id),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert wrong.returncode == 1
        assert "expected peer" in wrong.stderr and "Traceback" not in wrong.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ping", "[::1"], "missing ']'"),
        (["ping", "127.0.0.1:99999"], "port must be"),
        (["ping", "127.0.0.1:1", "--size", "1025"], "--size from 0 to 1024"),
        (["daemon", "--listen", "[::1"], "missing ']'"),
        (["daemon", "--interface", "eth0"], "not an IP address"),
        (["peers", "--interface", "::1"], "only IPv4"),
        (["daemon", "--peer", "nonsense"], "--peer / config.json peers"),
        (["send", "x", "hi", "--peer", "nonsense"], "--peer / config.json peers"),
    ],
)
def test_bad_arguments_give_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        p2pchat("--home", str(tmp_path), *args), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_ping_to_a_closed_port_says_so(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        p2pchat("--home", str(tmp_path), "ping", f"127.0.0.1:{port}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot reach" in result.stderr and "Traceback" not in result.stderr


def test_listen_on_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            p2pchat(
                "--home", str(tmp_path), "daemon", "--listen", f"127.0.0.1:{port}", "--no-mdns"
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_a_profile_runs_one_node_at_a_time(tmp_path: Path) -> None:
    with daemon(tmp_path / "a"):
        second = subprocess.run(
            p2pchat(
                "--home", str(tmp_path / "a"), "daemon", "--listen", "127.0.0.1:0", "--no-mdns"
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "already running" in second.stderr and "Traceback" not in second.stderr
    # Once the first node has stopped, the profile is free again.
    with daemon(tmp_path / "a") as (_, info):
        assert info["addresses"]


def test_ping_to_something_that_is_not_p2pchat_says_so(tmp_path: Path) -> None:
    import socket
    import threading

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def http_like() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(100)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        thread = threading.Thread(target=http_like)
        thread.start()
        result = subprocess.run(
            p2pchat("--home", str(tmp_path), "ping", f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        thread.join()
    assert result.returncode == 1
    assert "not a p2pchat node" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_command_is_a_usage_error_not_the_chat_window(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from p2pchat.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--home", str(tmp_path), "teleport", "now", "--help"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'teleport'" in capsys.readouterr().err


def test_global_options_work_after_the_command_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from p2pchat.cli import main

    assert main(["--home", str(tmp_path / "ann"), "id", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)["id"]
    assert main(["id", "--json", "--home", str(tmp_path / "ann"), "-v"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == before
    # Given before the command, a --home is not undone by the command's own default.
    assert main(["--home", str(tmp_path / "bob"), "id", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] != before


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path: Path) -> None:
    """`p2pchat contacts --json | head -c 10`: the pipe closes under the writer."""
    home = tmp_path / "ann"
    subprocess.run(p2pchat("--home", str(home), "id"), check=True, capture_output=True)
    with open_store(home / DATABASE_FILE) as store:
        for n in range(500):  # more output than one pipe buffer
            store.add_contact(bytes([n % 256, n // 256]) * 16, petname=f"friend {n:03}", now=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "p2pchat", "--home", str(home), "contacts", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(10)
    process.stdout.close()  # the reader goes away before the writer is done
    error = process.stderr.read().decode()
    assert process.wait(timeout=60) != 0
    assert "Traceback" not in error, error
