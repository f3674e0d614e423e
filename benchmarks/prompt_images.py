"""Time of drawing one sample's visual prompt images (`harness.visual.visual_prompt_images`).

    python benchmarks/prompt_images.py             # MVTec-AD bottle broken_large/000 from ../shared/data
    python benchmarks/prompt_images.py --data-root /work/shared/data/mvtec_ad --calls 50
    PYTHONPATH=/other/checkout python benchmarks/prompt_images.py   # the same images through other code

The query and its ground-truth mask (as the region) are read once; the anomaly map is a seeded random
224x224 float map, as a detector gives one; no reference (a run shrinks it once per category).
Every picture is drawn (query, outline, crop, heat map: a template showing them all); prints the median,
min and max of ``--calls`` calls, after one warm-up call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from harness.images import load_mask, load_rgb  # noqa: E402
from harness.visual import visual_prompt_images  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data" / "mvtec_ad",
                        help="MVTec-AD root [default: ../shared/data/mvtec_ad beside the checkout]")
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args(argv)
    bottle = args.data_root / "bottle"
    args.image = bottle / "test" / "broken_large" / "000.png"
    args.mask = bottle / "ground_truth" / "broken_large" / "000_mask.png"
    for path in (args.image, args.mask):
        if not path.is_file():
            print(f"{path}: not found (pass --data-root, the MVTec-AD root)", file=sys.stderr)
            return 2
    query = load_rgb(args.image)
    region = load_mask(args.mask, query.size)
    anomaly_map = np.random.default_rng(0).random((224, 224)).astype(np.float32)

    def draw_all() -> dict:
        # The pictures are drawn when first asked for (`PromptPictures`): ask for every one, as a template
        # that shows them all would.
        pictures = visual_prompt_images(query, None, region, anomaly_map)
        return {name: pictures[name] for name in pictures}

    draw_all()  # warm-up
    times = []
    for _ in range(args.calls):
        start = time.perf_counter()
        images = draw_all()
        times.append(time.perf_counter() - start)
    sizes = ", ".join(f"{name} {img.size[0]}x{img.size[1]}" for name, img in images.items())
    print(f"query {query.size[0]}x{query.size[1]} from {args.image}; sent: {sizes}")
    print(f"visual_prompt_images: median {1000 * statistics.median(times):.1f} ms, "
          f"min {1000 * min(times):.1f} ms, max {1000 * max(times):.1f} ms over {args.calls} calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
