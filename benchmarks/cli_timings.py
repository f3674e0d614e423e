"""Wall-clock times of the README's short commands, measured as a user runs them.

    python benchmarks/cli_timings.py [--repeats 3] [--keep DIR]

Each command runs as its own ``harness`` process (so start-up and imports count, as they do for a
user) in a scratch folder, with the response cache off where the README's row says the first run,
and prints the wall time of each repeat, the load average before it, and the figures the README
quotes beside the time (accuracies per class order, the report's size). The demo is generated
first, untimed, into this script's own cache folder (``$HARNESS_CACHE_DIR`` is set to it).

Rows measured (README "Performance"):
- demo end to end: ``harness run --benchmark demo --gate oracle --models random``;
- position bias: the same with ``--class-order shuffle --repeats 3``;
- scoring a VELM-format file of every MVTec-AC test image (1597 predictions, each the true class
  of its image's folder, so nothing but the scoring is measured; no image is read);
- the HTML report of two demo runs (oracle and none gate).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-c", "from harness.cli import main; main()"]


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run one harness command; its wall time in seconds and its stdout. A failure stops the script."""
    start = time.perf_counter()
    done = subprocess.run(HARNESS + args, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"harness {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return wall, done.stdout


def velm_predictions(path: Path) -> int:
    """A VELM-format file naming every MVTec-AC test image's own class; the number of predictions."""
    from harness_datasets.release import release_for

    release = release_for("mvtec-ac")
    predictions = {}
    for category, folders in release.files.items():
        for folder, files in folders.items():
            for file in files:
                predictions[f"{category}_{folder}_{Path(file).stem}"] = folder.replace("_", " ")
    path.write_text(json.dumps(predictions), encoding="utf-8")
    return len(predictions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="cli-timings-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HARNESS_CACHE_DIR": str(work / "cache")}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, work folder {work}")

    timed(["run", "--benchmark", "demo", "--models", "random", "--limit", "1", "--results-dir", "warm"], work, env)
    demo = ["run", "--benchmark", "demo", "--gate", "oracle", "--models", "random", "--no-cache"]
    rows = []
    for repeat in range(args.repeats):
        load = os.getloadavg()[0]
        wall, _ = timed(demo + ["--run-id", f"demo-{repeat}"], work, env)
        rows.append(("demo end to end", repeat, wall, load, ""))
    for repeat in range(args.repeats):
        load = os.getloadavg()[0]
        wall, _ = timed(demo + ["--class-order", "shuffle", "--repeats", "3", "--run-id", f"bias-{repeat}"], work, env)
        run = json.loads((work / "results" / f"bias-{repeat}" / "run.json").read_text())
        orders = run["class_order"]["models"]["random"]
        figures = (f"accuracy per order {' / '.join(f'{100 * a:.1f}' for a in orders['accuracy_per_order'])}; "
                   f"consistency {100 * orders['consistency']:.1f}%")
        rows.append(("position bias (3 orders)", repeat, wall, load, figures))
    predictions = work / "velm.json"
    count = velm_predictions(predictions)
    for repeat in range(args.repeats):
        load = os.getloadavg()[0]
        wall, _ = timed(["score", "--benchmark", "mvtec-ac", "--predictions", str(predictions), "--format", "velm",
                         "--name", f"timing-{repeat}"], work, env)
        rows.append((f"score {count} VELM predictions", repeat, wall, load, ""))
    timed(["run", "--benchmark", "demo", "--gate", "none", "--models", "random", "--run-id", "none-gate"], work, env)
    for repeat in range(args.repeats):
        load = os.getloadavg()[0]
        output = work / f"report-{repeat}.html"
        wall, _ = timed(["report", "demo-0", "none-gate", "-o", str(output)], work, env)
        rows.append(("report of two demo runs", repeat, wall, load, f"{output.stat().st_size / 1000:.0f} KB"))

    print(f"{'what':34} {'#':>2} {'wall s':>7} {'load':>5}  figures")
    for what, repeat, wall, load, figures in rows:
        print(f"{what:34} {repeat:>2} {wall:7.2f} {load:5.2f}  {figures}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
