"""PNGs decoded in one call of libpng's decoder (`harness.png`): the same pixels as Pillow's loader,
other PNGs left to it, damaged ones refused with the file named."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.errors import BadInputError
from harness.images import load_rgb, to_8bit
from harness.png import read_plain_png

from conftest import BOTTLE


def pillow_rgb(path: Path) -> np.ndarray:
    """What `load_rgb` gave before it read any PNG itself."""
    with Image.open(path) as image:
        image.load()
        return np.asarray(to_8bit(image).convert("RGB"))


def noisy(mode: str, size=(400, 300), seed=0) -> Image.Image:
    """Noise compresses badly: Pillow writes it in several IDAT chunks."""
    channels = len(Image.new(mode, (1, 1)).getbands())
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    found, position = [], 8
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        found.append((kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return found


def png_of(parts: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in parts:
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))
    return out


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA"])
@pytest.mark.parametrize("options", [{}, {"optimize": True}, {"compress_level": 0}, {"compress_level": 9}])
def test_same_pixels_as_pillow(tmp_path, mode, options):
    path = tmp_path / "x.png"
    noisy(mode).save(path, **options)
    if not options:
        assert sum(kind == b"IDAT" for kind, _ in chunks(path.read_bytes())) > 1  # several chunks joined
    decoded = read_plain_png(path)
    assert decoded is not None and decoded.mode == mode
    with Image.open(path) as image:
        image.load()
        assert np.array_equal(np.asarray(decoded), np.asarray(image))
    assert np.array_equal(np.asarray(load_rgb(path)), pillow_rgb(path))


def test_colour_and_text_chunks_leave_the_pixels_as_pillow_gives_them(tmp_path):
    # Neither decoder applies a file's gamma or colour profile (libpng would if asked: we do not ask).
    noisy("RGB").save(tmp_path / "plain.png")
    parts = chunks((tmp_path / "plain.png").read_bytes())
    extra = [(b"gAMA", struct.pack(">I", 100000)), (b"sRGB", b"\x00"), (b"tEXt", b"Comment\x00made here"),
             (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))]
    path = tmp_path / "with_chunks.png"
    path.write_bytes(png_of(parts[:1] + extra + parts[1:]))
    decoded = read_plain_png(path)
    assert decoded is not None
    assert np.array_equal(np.asarray(decoded), np.asarray(read_plain_png(tmp_path / "plain.png")))
    assert np.array_equal(np.asarray(load_rgb(path)), pillow_rgb(path))


def test_real_images_are_the_same(tmp_path):
    if not BOTTLE.is_dir():
        pytest.skip(f"needs the MVTec-AD bottle images in {BOTTLE}")
    for path in sorted((BOTTLE / "test").rglob("*.png"))[::10]:
        assert read_plain_png(path) is not None
        assert np.array_equal(np.asarray(load_rgb(path)), pillow_rgb(path)), path


def test_other_pngs_and_files_are_left_to_pillow(tmp_path):
    cases = {
        "palette.png": noisy("RGB").convert("P"),
        "sixteen.png": Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100),
        "bilevel.png": noisy("L").convert("1"),
    }
    for name, image in cases.items():
        image.save(tmp_path / name)
    noisy("RGB").save(tmp_path / "transparent.png", transparency=(0, 0, 0))
    noisy("RGB").save(tmp_path / "photo.jpg")
    for name in [*cases, "transparent.png", "photo.jpg"]:
        assert read_plain_png(tmp_path / name) is None, name
        assert np.array_equal(np.asarray(load_rgb(tmp_path / name)), pillow_rgb(tmp_path / name)), name
    # An interlaced header: left to Pillow before any data is read.
    noisy("RGB").save(tmp_path / "plain.png")
    parts = chunks((tmp_path / "plain.png").read_bytes())
    parts[0] = (b"IHDR", parts[0][1][:12] + b"\x01")
    (tmp_path / "interlaced.png").write_bytes(png_of(parts))
    assert read_plain_png(tmp_path / "interlaced.png") is None


def test_pillows_size_limit_still_applies(tmp_path, monkeypatch):
    noisy("RGB").save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert read_plain_png(tmp_path / "big.png") is None  # left to Pillow, which warns or refuses as it does


@pytest.mark.parametrize("damage, message", [
    ("checksum", "cannot decode image data"),  # libpng checks IDAT's checksum; here its inflating fails first
    ("checksum field", "cannot decode image data (IDAT: CRC error)"),
    ("header checksum", "broken PNG chunk IHDR"),
    ("truncated", "truncated PNG file"),
    ("no end", "truncated PNG file (no IEND chunk)"),
    ("short data", "not enough image data"),
    ("bad data", "cannot decode image data"),
])
def test_damaged_plain_pngs_are_refused_naming_the_file(tmp_path, damage, message):
    noisy("RGB").save(tmp_path / "good.png")
    data = (tmp_path / "good.png").read_bytes()
    parts = chunks(data)
    idat = [i for i, (kind, _) in enumerate(parts) if kind == b"IDAT"]
    if damage == "checksum":
        start = data.index(b"IDAT") + 10
        data = data[:start] + bytes([data[start] ^ 0xFF]) + data[start + 1 :]
    elif damage == "header checksum":
        data = data[:29] + bytes([data[29] ^ 0xFF]) + data[30:]  # IHDR's checksum (bytes 29-32)
    elif damage == "checksum field":  # the data intact, its checksum wrong
        end = data.index(b"IDAT") + 4 + len(parts[idat[0]][1])
        data = data[:end] + bytes([data[end] ^ 0xFF]) + data[end + 1 :]
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "no end":
        data = png_of(parts[:-1])
    elif damage == "short data":
        data = png_of([p for i, p in enumerate(parts) if i not in idat[1:]])  # only the first IDAT chunk
    else:
        data = png_of([p if i != idat[0] else (b"IDAT", b"\x00" * 64) for i, p in enumerate(parts)])
    path = tmp_path / "damaged.png"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="(?i)" + message.replace("(", r"\(").replace(")", r"\)")):
        read_plain_png(path)
    with pytest.raises(BadInputError, match=rf"{path}: not a readable image"):
        load_rgb(path)
