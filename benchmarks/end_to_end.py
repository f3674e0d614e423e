"""How fast ``harness run --gate patchcore`` gets through a category, as a user runs it.

    python benchmarks/end_to_end.py                       # MVTec-AD bottle from ../shared/data, 3 runs
    python benchmarks/end_to_end.py --category bottle --runs 5 --models random
    python benchmarks/end_to_end.py --synthetic 160       # no data: bottle-sized synthetic images (a GPU machine)

Each run is its own ``harness run`` process (interpreter start-up, imports, torch's included, and the
exit count, as they do for a user), with the fit cached: one untimed run first makes the fit (or finds
it) in this script's cache folder (``$HARNESS_CACHE_DIR``: a scratch folder, or ``--cache-dir``), and
every run writes to a fresh results folder.
Reported per run:

- wall: the process, start to end;
- loop: the category's records, from the first written to the last, in images per second over the
  records between them (``samples.jsonl`` is watched every 20 ms): decoding, the gate, the prompts
  and the records, without start-up and the fit's loading;
- cpu: the process's user + system seconds (with 2 cores, wall x 2 is the most it can use);
- load: the 1-minute load average before the run (other work on the machine slows a run).

Another version (the code before a change, say) is measured by putting it first on ``PYTHONPATH``:
the runs are ``python -c "from harness.cli import main; main()"`` with this script's environment, from
a scratch folder. That version's packages must then be importable by their names (a folder of links:
``harness``, ``harness_prompts`` to its ``prompts``, each ``plugins/harness_*``) beside a copy of the
installed ``anomaly_harness-*.dist-info`` whose ``entry_points.txt`` lists that version's plugins.
Runs of two checkouts are best interleaved (``--runs 1 --cache-dir DIR`` each, in turns): on a shared
machine the same run varies by 20-40%.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-c", "from harness.cli import main; main()"]


def record_times(results: Path, stop: threading.Event, started: float, seen: list[tuple[float, int]]) -> None:
    """Append (seconds since ``started``, records so far) to ``seen`` whenever samples.jsonl grows."""
    size = -1
    while not stop.is_set():
        files = list(results.glob("*/samples.jsonl"))
        if files:
            now_size = files[0].stat().st_size
            if now_size != size:
                size = now_size
                with files[0].open("rb") as handle:
                    seen.append((time.perf_counter() - started, sum(1 for _ in handle)))
        stop.wait(0.02)


def one_run(args: argparse.Namespace, results: Path, env: dict[str, str]) -> dict[str, float]:
    """One timed ``harness run``; its wall, loop and CPU figures. A failed run stops the script."""
    command = HARNESS + [
        "run", "--benchmark", args.benchmark, "--data-root", str(args.data_root.absolute()), "--category", args.category,
        "--gate", "patchcore", "--models", args.models, "--results-dir", str(results),
    ]
    seen: list[tuple[float, int]] = []
    stop = threading.Event()
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    watcher = threading.Thread(target=record_times, args=(results, stop, started, seen), daemon=True)
    watcher.start()
    # Not from this checkout's folder: ``python -c`` puts the working folder first on sys.path, which would
    # shadow the checkout that PYTHONPATH names.
    done = subprocess.run(command, cwd=results.parent, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    stop.set()
    watcher.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"harness run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    seen = [(t, n) for t, n in seen if n > 0]
    if len(seen) < 2:
        sys.exit("fewer than two record writes were seen: too few images to time the loop")
    (first_t, first_n), (last_t, last_n) = seen[0], seen[-1]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "first": first_t, "last": last_t, "images": last_n,
            "loop": (last_n - first_n) / max(last_t - first_t, 1e-9), "cpu": cpu, "load": load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data" / "mvtec_ad")
    parser.add_argument("--category", default="bottle")
    parser.add_argument("--models", default="random")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, help="keep fits here between invocations (default: a scratch folder)")
    parser.add_argument("--synthetic", type=int, metavar="N",
                        help="instead of --data-root: about N bottle-sized synthetic test images (benchmarks/synthetic_images.py)")
    args = parser.parse_args(argv)
    args.benchmark = "mvtec-ad"
    if not args.synthetic and not (args.data_root / args.category).is_dir():
        sys.exit(f"no {args.category} folder under {args.data_root}: give --data-root (an MVTec-AD root)")
    with tempfile.TemporaryDirectory(prefix="end-to-end-") as scratch:
        if args.synthetic:  # a folder-benchmark tree of the demo's tile, enlarged
            import synthetic_images  # benchmarks/, this script's folder

            args.benchmark, args.category = "folder", synthetic_images.CATEGORY
            args.data_root = synthetic_images.write_tree(Path(scratch) / "images", args.synthetic)
        cache = args.cache_dir.absolute() if args.cache_dir else Path(scratch) / "cache"
        env = dict(os.environ, HARNESS_CACHE_DIR=str(cache))
        print(f"fitting once, untimed (cache {env['HARNESS_CACHE_DIR']}) ...", flush=True)
        one_run(args, Path(scratch) / "warm-up", env)
        print(f"{'run':>3} {'wall s':>7} {'first rec s':>11} {'last rec s':>10} {'loop img/s':>10} "
              f"{'end-to-end img/s':>16} {'cpu s':>6} {'load 1m':>7}")
        for number in range(1, args.runs + 1):
            row = one_run(args, Path(scratch) / f"run-{number}", env)
            print(f"{number:>3} {row['wall']:>7.2f} {row['first']:>11.2f} {row['last']:>10.2f} {row['loop']:>10.1f} "
                  f"{row['images'] / row['wall']:>16.1f} {row['cpu']:>6.1f} {row['load']:>7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
