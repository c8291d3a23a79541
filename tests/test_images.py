"""Pictures within limits: thumbnails fit the protocol's cap, previews keep the aspect,
and what is no picture, or claims to be an enormous one, is "no picture", never an
error and never decoded."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

from PIL import Image

from p2pchat.images import MAX_THUMBNAIL_PIXELS, picture, pixels, thumbnail
from p2pchat.wire.messages import MAX_THUMBNAIL_BYTES


def noisy_photo(path: Path, width: int, height: int) -> Path:
    # Noise compresses worst: the thumbnail must still fit the cap.
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(path, quality=95)
    return path


def test_a_thumbnail_fits_the_cap_and_is_a_picture(tmp_path: Path) -> None:
    small = thumbnail(noisy_photo(tmp_path / "noise.jpg", 3000, 2000))
    assert 0 < len(small) <= MAX_THUMBNAIL_BYTES
    with Image.open(io.BytesIO(small)) as image:
        assert max(image.size) == 96 and image.size[0] > image.size[1]


def test_previews_keep_the_aspect_and_never_enlarge(tmp_path: Path) -> None:
    photo = noisy_photo(tmp_path / "wide.jpg", 400, 100)
    shown = pixels(photo, 48, 28)
    assert shown is not None and (shown.width, shown.height) == (48, 12)
    assert len(shown.rgb) == 48 * 12 * 3
    tiny = noisy_photo(tmp_path / "tiny.png", 8, 6)
    assert (lambda p: p is not None and (p.width, p.height) == (8, 6))(pixels(tiny, 48, 28))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` by ``height`` (a decompression bomb's
    first bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\0" * 10_000)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def test_no_picture_or_a_bomb_is_no_picture(tmp_path: Path) -> None:
    assert pixels(b"", 48, 28) is None
    assert pixels(os.urandom(5000), 48, 28) is None
    assert pixels(b"GIF89a" + os.urandom(100), 48, 28) is None
    bomb = png_claiming(60_000, 60_000)
    assert len(bomb) < MAX_THUMBNAIL_BYTES
    assert pixels(bomb, 48, 28) is None
    assert pixels(png_claiming(1000, 1000), 48, 28, max_pixels=MAX_THUMBNAIL_PIXELS) is None
    (tmp_path / "bomb.png").write_bytes(bomb)
    assert thumbnail(tmp_path / "bomb.png") == b""
    assert thumbnail(tmp_path / "missing.png") == b""
    assert picture(tmp_path / "bomb.png") is None
    assert picture(tmp_path / "missing.png") is None


def test_a_picture_viewed_whole_fits_its_box_and_keeps_the_aspect(tmp_path: Path) -> None:
    shown = picture(noisy_photo(tmp_path / "big.jpg", 3000, 1000), box=600)
    assert shown is not None and shown.size == (600, 200) and shown.mode == "RGB"
    small = picture(noisy_photo(tmp_path / "small.png", 30, 20))
    assert small is not None and small.size == (30, 20)  # never enlarged
