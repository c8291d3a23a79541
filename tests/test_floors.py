"""The floors of the house: which package may import which.

Each top-level package or module of ``p2pchat`` sits on a floor; code may import from
floors below its own, never from its own floor's neighbours or from above. So the pure
cores never reach the sockets, the transport never reaches the application, and the
front ends reach the rest of the node only through the node and the command layer.
docs/architecture.md draws the same picture; this test keeps it true.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import p2pchat

PACKAGE = Path(p2pchat.__file__).parent

FLOORS: dict[str, int] = {
    # Leaves: no p2pchat imports but each other's, in this order.
    "__init__": 0,  # the version
    "errors": 0,
    "addresses": 0,
    "ratelimit": 0,
    "backlog": 0,
    "wallclock": 0,
    "sizes": 0,
    "allocator": 0,  # glibc's malloc tuned for block-sized buffers (cli calls it)
    "identity": 1,
    "diskfaults": 1,
    "feed": 1,
    "logfile": 2,
    "networks": 2,  # a private network's key and what derives from it (pure)
    # Pure cores: bytes and values in, bytes, values and events out.
    "wire": 2,
    "noise": 2,
    "session": 3,
    "mesh": 3,
    "chat": 3,
    "files": 3,
    "xmpp": 3,  # XML streams of XMPP link-local messaging (XEP-0174), hardened
    "images": 3,  # decoding pictures within limits (thumbnails, previews)
    "locking": 3,
    # Our own tor process, its control protocol and onion addresses: the onion
    # transport's means (net/transports.py dials through it).
    "tor": 3,  # a locked profile's key file and where its passphrase comes from
    # Side by side, unaware of each other: the disk, the profile, the transport.
    "store": 4,
    "profile": 4,
    "net": 4,
    # The simulator drives the real cores over a fake network and clock. It sits beside
    # the disk and the transport because it replaces them, so it may not import them
    # (nor anything above); nothing in p2pchat imports it but its old command name.
    "sim": 4,
    "discovery": 5,
    "node": 6,
    # Changing a profile's lock in place: its key file, its store and peers.json.
    "relock": 6,
    # Every user action once, as a typed call (the front ends' way to the node).
    "commands": 7,
    "api": 8,
    # Front ends: the chat window, and the command line that also launches it.
    "ui": 9,
    "cli": 10,
    "__main__": 11,
}

# Floors below a front end that it still may not touch: the UI reaches the store and
# discovery through the node and the command layer only.
FORBIDDEN: dict[str, frozenset[str]] = {
    "ui": frozenset({"store", "discovery", "net"}),
}

# Imports that break the rules and are still to be moved (none now: the UI reaches the
# store and discovery through the command layer). Each entry must still exist (the test
# says when one is gone, so the list only shrinks); a new breach is not added here.
KNOWN_BREACHES: frozenset[tuple[str, str]] = frozenset()


# Old command names kept working: they import the new home only when run as a script
# (``python -m``), so importing them still loads nothing from above their floor
# (tests/sim/test_sim.py checks this for ``p2pchat.mesh.sim``).
COMMAND_ALIASES: frozenset[tuple[str, str]] = frozenset({("mesh/sim.py", "sim")})


def floor_of(relative: Path) -> str:
    return relative.parts[0].removesuffix(".py")


def imported_packages(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """(top-level package under p2pchat, line) for every import of p2pchat, also the
    ones inside functions (a late import is still a dependency)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "p2pchat":
                continue
            if len(parts) > 1:
                yield parts[1], node.lineno
            else:  # from p2pchat import x: a package, or a name of p2pchat/__init__.py
                for alias in node.names:
                    is_package = (PACKAGE / alias.name).is_dir()
                    is_module = (PACKAGE / f"{alias.name}.py").is_file()
                    yield (alias.name if is_package or is_module else "__init__"), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "p2pchat" and len(parts) > 1:
                    yield parts[1], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"relative import at line {node.lineno}: use p2pchat.…")


def breaches() -> tuple[list[str], set[tuple[str, str]]]:
    problems: list[str] = []
    known_seen: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        here = floor_of(relative)
        assert here in FLOORS, f"{relative}: a new package needs a floor in {__file__}"
        tree = ast.parse(path.read_text(), str(path))
        for target, line in imported_packages(tree):
            if target == here:
                continue
            assert target in FLOORS, f"{relative}:{line}: p2pchat.{target} has no floor"
            wrong = FLOORS[target] >= FLOORS[here] or target in FORBIDDEN.get(here, ())
            if not wrong:
                continue
            key = (relative.as_posix(), target)
            if key in COMMAND_ALIASES:
                continue
            if key in KNOWN_BREACHES:
                known_seen.add(key)
                continue
            problems.append(
                f"{relative}:{line}: {here} (floor {FLOORS[here]}) imports {target} "
                f"(floor {FLOORS[target]})"
            )
    return problems, known_seen


def test_every_import_goes_down_a_floor() -> None:
    problems, _ = breaches()
    assert problems == [], "\n".join(problems)


def test_the_list_of_known_breaches_only_shrinks() -> None:
    _, seen = breaches()
    gone = KNOWN_BREACHES - seen
    assert not gone, f"no longer breached, remove from KNOWN_BREACHES: {sorted(gone)}"


def test_the_rule_catches_an_import_going_up(tmp_path: Path) -> None:
    tree = ast.parse("def f():\n    from p2pchat.node.node import Node\n")
    assert list(imported_packages(tree)) == [("node", 2)]
    assert FLOORS["node"] >= FLOORS["net"], "net importing node would be refused"


# House rule 1: the pure cores do no I/O and keep no time or chance of their own. Time
# comes in as an argument and randomness as an injected generator, which they may name
# in annotations (imports under ``if TYPE_CHECKING:``) but never import to run.
PURE_CORES = ("wire", "noise", "session", "mesh", "chat", "files", "xmpp")
IMPURE_MODULES = frozenset({"trio", "asyncio", "socket", "sqlite3", "time", "random"})


def runtime_imports(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """(top-level module, line) of every import that runs, skipping the bodies of
    ``if TYPE_CHECKING:`` blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in {
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        }:
            skipped.update(id(inner) for part in node.body for inner in ast.walk(part))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0], node.lineno


def test_pure_cores_import_no_io_time_or_chance() -> None:
    problems = []
    for core in PURE_CORES:
        for path in sorted((PACKAGE / core).rglob("*.py")):
            relative = path.relative_to(PACKAGE)
            tree = ast.parse(path.read_text(), str(path))
            for module, line in runtime_imports(tree):
                if module in IMPURE_MODULES:
                    problems.append(f"{relative}:{line}: imports {module}")
    assert problems == [], "\n".join(problems)


def test_the_pure_core_rule_sees_through_type_checking_only() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import random\n"
        "def f():\n    import time\n"
    )
    assert [m for m, _ in runtime_imports(ast.parse(source))] == ["typing", "time"]
