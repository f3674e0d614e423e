"""The patchcore gate's work on the host, per image and on one thread: what a GPU does not take off it.

    python benchmarks/host_work.py              # MVTec-AD bottle's test images from ../shared/data
    python benchmarks/host_work.py --images 48 --folder DIR
    python benchmarks/host_work.py --synthetic --images 48   # no data: 900x900 synthetic images (a GPU machine)

Each step on every image, the best of 3 passes, in milliseconds per image on one thread (torch on one
thread too): decoding (`harness.images.load_rgb`); the backbone's crop (`features.preprocess`, only
the crop resized) against the whole image resized and then cropped (how it was done before); one
crop map brought to the image's size (`device_maps.sized_on_host`: the gate's last step); and, not
the gate's, the region and display map a run's thread computes when it reads a flagged image's
result (`harness_patchcore.result`). Twice: writing to memory new to the process (page faults, as
while a run's results pile up) and to memory freed a pass earlier (as when the C library hands back
what recorded results freed). Then, on one thread per core, images per second through the host's
part of the gate's scoring: decoding alone (all that is left with ``resize_on`` and ``map_finishing``
on the device), and decoding, crop and map (the defaults): a GPU gate cannot score faster than that.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from harness.images import load_rgb
from harness_patchcore import PatchCoreResult, device_maps, features
from harness_patchcore.runtime import import_torch, usable_cpus

import synthetic_images

ROOT = Path(__file__).resolve().parent.parent


def whole_resize_then_crop(image: Image.Image, image_size: int, crop_size: int) -> np.ndarray:
    top = features.crop_offset(image_size, crop_size)
    resized = np.asarray(image.resize((image_size, image_size), Image.Resampling.BILINEAR))
    return resized[top : top + crop_size, top : top + crop_size]


def ms_per_item(step, items: list, fresh: bool) -> float:
    """The best of 3 passes of ``step`` over ``items``, in ms per item. ``fresh``: every output is kept until
    all passes end, so each pass writes to memory new to the process; otherwise a pass's outputs are freed
    when it ends, and the next one may reuse that memory."""
    best, kept = float("inf"), []
    for _ in range(3):
        started = time.perf_counter()
        outputs = [step(item) for item in items]
        best = min(best, time.perf_counter() - started)
        if fresh:
            kept.append(outputs)
        del outputs
    return 1000 * best / len(items)


def images_per_second(step, items: list, threads: int) -> float:
    """``step`` on every item, each a task on ``threads`` threads, the best of 2 passes, outputs kept."""
    best, kept = float("inf"), []
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(2):
            started = time.perf_counter()
            kept.append(list(pool.map(step, items)))
            best = min(best, time.perf_counter() - started)
    return len(items) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=ROOT.parent / "shared" / "data" / "mvtec_ad" / "bottle" / "test")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--synthetic", action="store_true",
                        help="bottle-sized synthetic images made on the spot instead of --folder (benchmarks/synthetic_images.py)")
    parser.add_argument("--threads", type=int, default=usable_cpus(), help="threads for the last two rows [default: one per core]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.synthetic:
            args.folder = synthetic_images.write_tree(Path(scratch), args.images) / synthetic_images.CATEGORY / "test"
        measure(args)


def measure(args: argparse.Namespace) -> None:
    paths = sorted(args.folder.rglob("*.png"))[: args.images]
    if not paths:
        raise SystemExit(f"no PNG images under {args.folder}")
    torch = import_torch()
    torch.set_num_threads(1)
    images = [load_rgb(path) for path in paths]
    image_size, crop_size = 256, 224  # the gate's defaults
    # A smooth crop map (as the gate's are: upsampled and smoothed), a third of it above the pixel threshold.
    crop_map = torch.nn.functional.interpolate(torch.rand(1, 1, 28, 28) * 6, size=(crop_size, crop_size), mode="bilinear")[0]
    pixel_threshold, normal_level = 4.0, 1.0
    sized = device_maps.sized_on_host(torch, crop_map, [images[0].size], image_size, normal_level)[0]

    def read_maps(image: Image.Image) -> tuple:
        result = PatchCoreResult(1.0, True, 0.5, sized, pixel_threshold, normal_level)
        return result.region, result.anomaly_map

    steps = [
        ("decode (load_rgb)", load_rgb, paths),
        ("crop: only the crop resized (preprocess)", lambda im: features.preprocess(im, image_size, crop_size), images),
        ("crop: whole image resized, then cropped", lambda im: whole_resize_then_crop(im, image_size, crop_size), images),
        ("map to the image's size (sized_on_host)",
         lambda im: device_maps.sized_on_host(torch, crop_map, [im.size], image_size, normal_level), images),
        ("region and display map, when read", read_maps, images),
    ]
    print(f"{len(paths)} images from {args.folder} ({images[0].size[0]}x{images[0].size[1]} first), one thread")
    print(f"{'ms an image':<44} {'fresh memory':>12} {'memory reused':>14}")
    for name, step, items in steps:
        print(f"{name:<44} {ms_per_item(step, items, True):12.2f} {ms_per_item(step, items, False):14.2f}")

    def host_share(path: Path) -> tuple:  # what the host does for the gate by default (resize_on, map_finishing = host)
        image = load_rgb(path)
        crop = features.preprocess(image, image_size, crop_size)
        return crop, device_maps.sized_on_host(torch, crop_map, [image.size], image_size, normal_level)

    many = paths * max(1, -(-8 * args.threads // len(paths)))  # at least 8 images a thread
    print(f"on {args.threads} threads, {len(many)} images a pass, images/s (the most a GPU gate can score with "
          "decoding, if the host's part is all that limits it):")
    print(f"{'  decoding only (resize_on, map_finishing = device)':<52} {images_per_second(load_rgb, many, args.threads):8.1f}")
    print(f"{'  decoding, crop, map (the defaults)':<52} {images_per_second(host_share, many, args.threads):8.1f}")


if __name__ == "__main__":
    main()
