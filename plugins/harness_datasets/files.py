"""Small helpers shared by the folder-based loaders: image listing, names, root checks."""

from __future__ import annotations

from pathlib import Path

from harness.datasets import Benchmark

#: Image file suffixes the loaders accept, compared case-insensitively (VisA ships ``.JPG``).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


def is_image_file(path: Path) -> bool:
    """True for a visible regular file whose suffix is an accepted image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by path; empty when it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def list_subfolders(folder: Path) -> list[Path]:
    """The visible subfolders of ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def display_name(key: str) -> str:
    """A readable class name derived from a folder key: ``broken_large`` -> ``broken large``."""
    return " ".join(key.replace("_", " ").replace("-", " ").split())


def checked_root(benchmark: Benchmark, root: Path | str | None) -> Path:
    """The data root as an absolute folder path, or a layout error saying what is wrong with it."""
    if root is None:
        raise benchmark.layout_error(
            Path("<none>"), f"benchmark {benchmark.name!r} needs a data root (pass --data-root)"
        )
    path = Path(root).expanduser().absolute()
    if not path.exists():
        raise benchmark.layout_error(path, f"data root does not exist: {path}")
    if not path.is_dir():
        raise benchmark.layout_error(path, f"data root is not a folder: {path}")
    return path
