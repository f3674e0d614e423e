"""Repack an imagecodecs wheel with its PNG codec alone, for the device tool's 64 MiB carry.

    python benchmarks/device/png_only.py .whl/imagecodecs-*.whl   # rewrites it in place

The whole wheel is 26 MB (some forty codecs and their libraries); `harness.png` uses ``png_decode``
alone. Kept: the package's Python files, its shared module, the PNG codec, the libraries those load
(found by name inside the binaries, following each library's own), the licences and the metadata.
The package loads each codec on first use, so the others are simply absent there.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

KEEP = re.compile(r"imagecodecs/([^/]+\.py|py\.typed|_shared[^/]*|_png\.[^/]*|licenses/.*)$|imagecodecs-[^/]+\.dist-info/.*")


def png_only(wheel: Path) -> tuple[int, int]:
    """Rewrite ``wheel`` in place with the PNG codec alone; (bytes before, bytes after)."""
    before = wheel.stat().st_size
    with zipfile.ZipFile(wheel) as source:
        entries = {info.filename: source.read(info) for info in source.infolist()}
    libraries = {Path(name).name: name for name in entries if name.startswith("imagecodecs.libs/") and not name.endswith("/")}
    kept = {name for name in entries if KEEP.fullmatch(name)}
    pending = [name for name in kept if name.endswith(".so")]
    while pending:  # each binary's libraries, then theirs
        binary = entries[pending.pop()]
        for library, name in libraries.items():
            if name not in kept and library.encode() in binary:
                kept.add(name)
                pending.append(name)
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as target:
        for name in entries:
            if name in kept:
                target.writestr(name, entries[name])
    return before, wheel.stat().st_size


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        was, now = png_only(Path(argument))
        print(f"{argument}: {was / 1e6:.1f} MB -> {now / 1e6:.1f} MB (the PNG codec alone)")
