"""Reading images and masks, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.errors import BadInputError


def load_rgb(path: Path) -> Image.Image:
    """Open an image as RGB, fully decoded; a missing or corrupt file raises `BadInputError`."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError as error:
        raise BadInputError(f"{path}: file not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise BadInputError(f"{path}: not a readable image ({error})") from error


def load_mask(path: Path | None, size: tuple[int, int]) -> np.ndarray:
    """A boolean HxW mask for an image of ``size`` (width, height); all False when there is none."""
    width, height = size
    if path is None:
        return np.zeros((height, width), dtype=bool)
    try:
        with Image.open(path) as mask:
            mask = mask.convert("L")
            if mask.size != size:
                mask = mask.resize(size, Image.Resampling.NEAREST)
            return np.asarray(mask) > 127
    except FileNotFoundError as error:
        raise BadInputError(f"{path}: mask file not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise BadInputError(f"{path}: not a readable mask ({error})") from error
