"""Decoding a plain PNG in one call of libpng's decoder (imagecodecs' ``png_decode``).

Pillow's loader decodes one IDAT chunk at a time (64 for a bottle image), taking the GIL back after
each: beside a thread busy in Python (the gate's scoring, a GPU's kernel launches) each take waits
for the switch interval, and a 900x900 image took 1,173 ms instead of 22. libpng's one call runs
without the GIL: on bottle 1.5x the speed of Pillow's decoder given all the data at once, 3.3x beside
a busy thread (``python benchmarks/decoding.py``); the same pixels as Pillow's.

Only the common PNG is read this way: 8 bits per channel, greyscale or RGB with or without alpha,
not interlaced, no palette, transparency or animation chunk, not above Pillow's decompression-bomb
limit. For anything else `read_plain_png` returns None and the caller opens the file with Pillow.
"""

from __future__ import annotations

import binascii
import struct
from pathlib import Path

from imagecodecs import PngError, png_decode
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: (bit depth, colour type) -> Pillow mode, for the PNGs read here.
MODES = {(8, 0): "L", (8, 2): "RGB", (8, 4): "LA", (8, 6): "RGBA"}
#: Chunks that change what Pillow makes of the pixels: a file with one is left to Pillow.
LEFT_TO_PILLOW = {b"PLTE", b"tRNS", b"acTL"}


def read_plain_png(path: Path) -> Image.Image | None:
    """The decoded image of a plain PNG (see the module docstring), or None for any other file.

    A damaged plain PNG (a chunk whose checksum is wrong, a truncated file, image data that does not
    decode) raises ValueError naming what is wrong, as Pillow would raise for it.
    """
    data = Path(path).read_bytes()
    if not data.startswith(SIGNATURE):
        return None
    position, header = len(SIGNATURE), None
    while True:
        if position + 8 > len(data):
            raise ValueError("truncated PNG file (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        end = position + 12 + length
        if end > len(data):
            raise ValueError(f"truncated PNG file (in a {kind.decode('latin-1')} chunk)")
        # libpng checks IDAT checksums without the GIL; crc32 here would give it up, and wait, per chunk.
        if kind != b"IDAT":
            body = data[position + 8 : end - 4]
            if binascii.crc32(body, binascii.crc32(kind)) != struct.unpack(">I", data[end - 4 : end])[0]:
                raise ValueError(f"broken PNG chunk {kind.decode('latin-1')} (checksum mismatch)")
        position = end
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body[:13])
        elif kind in LEFT_TO_PILLOW:
            return None
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG file without an IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    mode = MODES.get((depth, colour))
    if mode is None or interlace or (Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS):
        return None
    try:
        pixels = png_decode(data)
    except PngError as error:
        raise ValueError(f"cannot decode image data ({error})") from error
    return Image.fromarray(pixels, mode)
