"""The gate a stream's bytes pass before expat sees them: valid UTF-8, no NUL, and only
whole characters.

Whole characters because expat judges a byte by what may follow it: handed half a
character, it would fail sooner or later depending on where the bytes were split.
NUL because it is no XML character at all (``&#0;`` is as forbidden), and expat,
seeing NULs among the first bytes of a document, guesses UTF-16 by how many it has seen.
"""

from __future__ import annotations

import codecs


class Utf8Gate:
    """Admits the bytes of one stream, piece by piece, up to the first fault."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._held = b""  # the start of a character whose end has not arrived

    @property
    def held(self) -> int:
        """Bytes taken in but not admitted yet (at most 3: a character cut short)."""
        return len(self._held)

    def admit(self, piece: bytes) -> tuple[bytes, str]:
        """What may go on to expat now (what was held, then ``piece``'s complete
        characters up to any fault) and the fault found after it ("" if none)."""
        data = self._held + piece
        try:
            self._decoder.decode(piece)
            good = data[: len(data) - len(self._decoder.getstate()[0])]
            fault = ""
        except UnicodeDecodeError as error:
            # Its offsets count from the bytes it held, as ``data`` does.
            good, fault = data[: error.start], "invalid UTF-8"
        if (nul := good.find(b"\0")) >= 0:
            good, fault = good[:nul], "a NUL byte"
        self._held = data[len(good) :]
        return good, fault
