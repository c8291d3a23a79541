"""Images within limits: the small picture sent with an offer (its thumbnail) and the
pixels of a preview. Pictures come from the network and from files anyone may have
made, so each is opened lazily, its size read from the header and refused above
:data:`MAX_PIXELS` before any pixel is decoded (a few KB can claim to be gigapixels),
and only the formats below are read at all. Any failure is "no picture", never an
exception: a picture is a nicety.

Blocking calls, for a worker thread: decoding a photo takes tens of milliseconds.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from p2pchat.wire.messages import MAX_THUMBNAIL_BYTES

log = logging.getLogger("p2pchat.images")

MAX_PIXELS = 64_000_000  # a 64-megapixel photo is previewed; more is not decoded
MAX_THUMBNAIL_PIXELS = 512 * 512  # what a thumbnail from the network may claim
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")
THUMBNAIL_BOX = 96  # pixels, the longer side of a thumbnail we send
VIEW_BOX = 2048  # pixels, the longer side of a picture viewed in the window (more is not seen)

# Pillow's own bomb check warns at MAX_IMAGE_PIXELS and refuses at twice that; ours
# refuses earlier, so its warning would only be noise.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass(frozen=True, slots=True)
class Pixels:
    """Decoded RGB pixels, row by row, 3 bytes each."""

    width: int
    height: int
    rgb: bytes

    def at(self, x: int, y: int) -> tuple[int, int, int]:
        i = 3 * (y * self.width + x)
        return self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]


def pixels(
    source: Path | bytes, width: int, height: int, *, max_pixels: int = MAX_PIXELS
) -> Pixels | None:
    """The picture in ``source`` scaled to fit ``width`` by ``height`` (aspect kept,
    never enlarged); None if it is no picture we read, or too large."""
    try:
        with _open(source, max_pixels) as image:
            image.draft("RGB", (width, height))  # JPEG: decode at a fraction of the size
            rgb = image.convert("RGB")
            rgb.thumbnail((width, height))
            return Pixels(rgb.width, rgb.height, rgb.tobytes())
    except Exception as error:
        log.debug("no picture from %s: %s", _label(source), error)
        return None


def picture(path: Path, box: int = VIEW_BOX) -> Image.Image | None:
    """The picture at ``path``, decoded and scaled to fit ``box`` by ``box`` pixels
    (aspect kept, never enlarged), for a terminal that draws real pixels; None if it
    is no picture we read, or too large."""
    try:
        with _open(path, MAX_PIXELS) as image:
            image.draft("RGB", (box, box))
            rgb = image.convert("RGB")
            rgb.thumbnail((box, box))
            return rgb
    except Exception as error:
        log.debug("no picture from %s: %s", path, error)
        return None


def thumbnail(path: Path, max_bytes: int = MAX_THUMBNAIL_BYTES) -> bytes:
    """A small JPEG of the picture at ``path`` to send with an offer (at most
    ``max_bytes``); empty if it is no picture we read."""
    try:
        with _open(path, MAX_PIXELS) as image:
            image.draft("RGB", (THUMBNAIL_BOX, THUMBNAIL_BOX))
            small = image.convert("RGB")
            small.thumbnail((THUMBNAIL_BOX, THUMBNAIL_BOX))
            for quality in (75, 50, 30):
                out = io.BytesIO()
                small.save(out, "JPEG", quality=quality)
                if out.tell() <= max_bytes:
                    return out.getvalue()
    except Exception as error:
        log.debug("no thumbnail of %s: %s", path, error)
    return b""


def _open(source: Path | bytes, max_pixels: int) -> Image.Image:
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(stream, formats=FORMATS)  # reads the header only
    width, height = image.size
    if width < 1 or height < 1 or width * height > max_pixels:
        image.close()
        raise ValueError(f"{width} by {height} pixels is more than we decode")
    return image


def _label(source: Path | bytes) -> str:
    return f"{len(source)} bytes" if isinstance(source, bytes) else str(source)
