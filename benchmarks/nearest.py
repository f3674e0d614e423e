"""Nearest-neighbour search of the PatchCore memory bank: the whole bank against the grouped search.

    python benchmarks/nearest.py                 # bottle from ../shared/data, default options
    python benchmarks/nearest.py --busy          # the same with one busy process on the cores
    python benchmarks/nearest.py --sizes 2000 4000 16386

Fits the gate on MVTec-AD bottle (through the fit cache, so a second run
skips it), extracts the patch features of its test images, then times, per
bank size, the search of every test image's patches (784 queries per image)
against the first n features of the bank:

- whole: `distances.nearest_squared` over the whole bank, on torch's threads;
- grouped: `search.ClusteredSearch`, on torch's threads too, with the share
  of the bank it compared.

Each figure is the best of ``--repeats`` passes over ``--images`` images, in
milliseconds per image. Both searches give the same distances (checked here
too). ``--busy`` starts one process that spins on a core for the whole
measurement: what scoring meets when other work shares the machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import torch  # noqa: E402

from harness.images import load_rgb  # noqa: E402
from harness.plugins import load_registry  # noqa: E402

from harness_patchcore import PatchCoreGate, PatchCoreOptions, features  # noqa: E402
from harness_patchcore.bank import MemoryBank  # noqa: E402
from harness_patchcore.distances import nearest_squared  # noqa: E402
from harness_patchcore.search import ClusteredSearch  # noqa: E402


def spin() -> None:
    while True:
        pass


def test_features(data_root: Path, category: str, count: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The fitted bank's features and the patch features (784, D) of the first ``count`` test images."""
    registry = load_registry()
    loaded = registry.get("benchmarks", "mvtec-ad").obj.load(data_root, [category]).categories[0]
    options = PatchCoreOptions(device="cpu")
    fitted = PatchCoreGate(options).fit(loaded)
    queries = []
    for sample in loaded.test_samples[:count]:
        crop = features.preprocess(load_rgb(sample.image), options.image_size, options.crop_size)
        patch = features.embed(torch, fitted.backbone, features.to_batch(torch, [crop], fitted.backbone), fitted.projection)
        queries.append(patch.reshape(-1, patch.shape[-1]))
    return fitted.bank.features, queries


def best_ms(search, queries: list[torch.Tensor], repeats: int) -> float:
    """The best pass's milliseconds per image."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for q in queries:
            search(q)
        best = min(best, (time.perf_counter() - started) / len(queries) * 1000)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data" / "mvtec_ad")
    parser.add_argument("--category", default="bottle")
    parser.add_argument("--sizes", type=int, nargs="*", help="bank sizes to time [default: 2000 4000 8000 and the whole bank]")
    parser.add_argument("--images", type=int, default=30, help="test images per pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", action="store_true", help="keep one other process spinning on a core meanwhile")
    args = parser.parse_args(argv)
    if not (args.data_root / args.category).is_dir():
        sys.exit(f"no {args.category} folder under {args.data_root}: give --data-root (an MVTec-AD root)")

    bank, queries = test_features(args.data_root, args.category, args.images)
    sizes = args.sizes or [2000, 4000, 8000, bank.shape[0]]
    busy = multiprocessing.Process(target=spin, daemon=True) if args.busy else None
    if busy is not None:
        busy.start()
    try:
        print(f"{args.category}: {len(queries)} test images x {queries[0].shape[0]} patches, {queries[0].shape[1]} dimensions;"
              f" torch threads {torch.get_num_threads()}; busy process: {'yes' if busy else 'no'}")
        print(f"{'bank':>7} {'whole ms':>9} {'grouped ms':>11} {'compared':>9}")
        for size in sizes:
            part = MemoryBank(torch, bank[: min(size, bank.shape[0])])
            grouped = ClusteredSearch(torch, part.features, part.squared)

            def whole(q, part=part):
                with torch.inference_mode():
                    return nearest_squared(torch, q, (q * q).sum(dim=1), part.transposed, part.squared)

            def by_groups(q, grouped=grouped):
                with torch.inference_mode():
                    return grouped.nearest(q, (q * q).sum(dim=1))

            for q in queries[:3]:  # the same answers: features at the same distance, computed directly
                found = [((part.features[search(q)[1]] - q) ** 2).sum(dim=1) for search in (whole, by_groups)]
                assert torch.allclose(found[0], found[1], rtol=1e-5), f"the searches disagree at bank size {size}"
            whole_ms, grouped_ms = best_ms(whole, queries, args.repeats), best_ms(by_groups, queries, args.repeats)
            print(f"{len(part):>7} {whole_ms:>9.1f} {grouped_ms:>11.1f} {grouped.compared_fraction:>9.2f}")
    finally:
        if busy is not None:
            busy.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
