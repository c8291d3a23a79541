"""docs/performance.md: each benchmark owns one section between its own markers."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def write_section(name: str, heading: str, body: str) -> None:
    """Replace the text between ``<!-- NAME-bench:start/end -->`` (or add a section
    titled ``heading`` at the end of the file with it)."""
    start, end = f"<!-- {name}-bench:start -->", f"<!-- {name}-bench:end -->"
    block = f"{start}\n{body}\n{end}"
    doc = DOC.read_text(encoding="utf-8")
    if start in doc:
        head, rest = doc.split(start, 1)
        doc = head + block + rest.split(end, 1)[1]
    else:
        doc = doc.rstrip("\n") + f"\n\n## {heading}\n\n{block}\n"
    DOC.write_text(doc, encoding="utf-8")


def write_run(name: str, heading: str, script: str, lines: list[str]) -> None:
    """Record a bench's printed ``lines`` in its section, with the command that made
    them (this process's arguments, less ``--write``) and today's date."""
    command = " ".join([f".venv/bin/python {script}", *sys.argv[1:]]).replace(" --write", "")
    today = datetime.date.today().isoformat()
    body = "\n".join(
        [f"Command: `{command}`; run recorded here on {today}.", "", "```", *lines, "```"]
    )
    write_section(name, heading, body)


def run_report(command: str, lines: list[str], table: list[str]) -> str:
    """The usual body: the command and date, the printed lines, the table."""
    today = datetime.date.today().isoformat()
    return "\n".join(
        [f"Command: `{command}`; run recorded here on {today}.", "", "```", *lines, "```", "",
         *table]
    )  # fmt: skip
