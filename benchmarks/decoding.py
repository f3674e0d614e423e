"""How fast images decode on threads, alone and beside a thread busy in Python: Pillow's loader against
`harness.images.load_rgb` (which decodes a plain PNG in one call of libpng's decoder, `harness.png`).

    python benchmarks/decoding.py                      # MVTec-AD bottle's test images from ../shared/data
    python benchmarks/decoding.py --threads 4 --images 40

A thread busy in Python stands for what runs beside decoding in a run: the gate's scoring, or a GPU's
kernel launches. Pillow's loader takes the GIL back once per IDAT chunk, so it waits on that thread.
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from harness.images import load_rgb

ROOT = Path(__file__).resolve().parent.parent


def pillow_loader(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def images_per_second(load, paths: list[Path], threads: int, busy: bool) -> float:
    stop = threading.Event()

    def spin() -> None:  # pure Python: holds the GIL but for the switch interval
        count = 0
        while not stop.is_set():
            count += 1

    spinner = threading.Thread(target=spin)
    if busy:
        spinner.start()
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(load, paths))
        return len(paths) / (time.perf_counter() - started)
    finally:
        stop.set()
        if busy:
            spinner.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=ROOT.parent / "shared" / "data" / "mvtec_ad" / "bottle" / "test")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    paths = sorted(args.folder.rglob("*.png"))[: args.images]
    if not paths:
        raise SystemExit(f"no PNG images under {args.folder}")
    print(f"{len(paths)} images from {args.folder}, {args.threads} decoding threads")
    for busy in (False, True):
        for name, load in (("Pillow's loader", pillow_loader), ("load_rgb", load_rgb)):
            runs = 1 if busy else 3  # beside the busy thread one pass takes long enough
            rate = max(images_per_second(load, paths, args.threads, busy) for _ in range(runs))
            print(f"{'beside a busy thread' if busy else 'alone':<22} {name:<16} {rate:7.1f} images/s")


if __name__ == "__main__":
    main()
