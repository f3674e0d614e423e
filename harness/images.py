"""Reading images and masks (any format Pillow decodes), with errors that name the file.

Greyscale becomes grey RGB, alpha and palettes RGB. High-bit-depth greyscale is scaled to 8 bits over
its type's full range (16-bit: value / 257), never clipped as Pillow's conversion would (to white);
float images are read as 0..1 when they lie there, otherwise like 16-bit values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.errors import BadInputError
from harness.png import read_plain_png
from harness.visual import as_mask

#: Full-scale value of the high-bit-depth greyscale modes, by Pillow mode.
#: Pillow opens 16-bit PNGs and TIFFs as ``I;16`` (older versions: ``I``), so ``I`` is read as 16-bit too.
_FULL_SCALE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}


def to_8bit(image: Image.Image) -> Image.Image:
    """An 8-bit image (``L`` for greyscale, else unchanged mode) with high-bit-depth values scaled, not clipped."""
    if image.mode in _FULL_SCALE:
        full_scale = _FULL_SCALE[image.mode]
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        full_scale = 1.0 if np.nanmax(values, initial=0.0) <= 1.0 else 65535
    else:
        return image
    values = np.nan_to_num(np.asarray(image, dtype=np.float64))
    scaled = np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def load_rgb(path: Path) -> Image.Image:
    """Open an image as RGB, fully decoded; a missing or corrupt file raises `BadInputError`."""
    try:
        plain = read_plain_png(path)  # decoded in one call: decoding threads then barely hold the GIL
        if plain is not None:
            return plain if plain.mode == "RGB" else plain.convert("RGB")
        with Image.open(path) as image:
            image.load()
            return to_8bit(image).convert("RGB")
    except FileNotFoundError as error:
        raise BadInputError(f"{path}: file not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise BadInputError(f"{path}: not a readable image ({error})") from error


def mask_pixels(mask: Image.Image) -> np.ndarray:
    """The defect pixels of a mask image in any mode (0/255, 0/65535 or 0/1), as a boolean HxW array.

    A mask whose largest value is 1 counts every non-zero pixel; otherwise a defect is above half of
    full scale, which also keeps JPEG noise around black out of the region.
    """
    grey = np.asarray(to_8bit(mask).convert("L"))
    raw = np.asarray(mask)
    if raw.ndim == 2 and raw.size and raw.max() == 1:  # a 0/1 label image, any bit depth
        return raw > 0
    return grey > 127


def load_mask(path: Path | None, size: tuple[int, int]) -> np.ndarray:
    """A boolean HxW mask for an image of ``size`` (width, height); all False when there is none."""
    if path is None:
        width, height = size
        return np.zeros((height, width), dtype=bool)
    try:
        with Image.open(path) as mask:
            mask.load()
            pixels = mask_pixels(mask)
    except FileNotFoundError as error:
        raise BadInputError(f"{path}: mask file not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise BadInputError(f"{path}: not a readable mask ({error})") from error
    return as_mask(pixels, size)  # resized nearest-neighbour when its size differs
