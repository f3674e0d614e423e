"""Scale: a demo sweep run with --executor local and --executor ray, Ray's overhead per task, and two loopback
OpenAI replicas against one.

    python benchmarks/scale.py [--limit 6] [--parallel 1] [--ray-cpus 2] [--calls 192] [--out DIR]

1. The sweep: the demo benchmark's categories x the models `random`, `knn` (3 shots) and a tiny random
   LLaVA built here (tests/tiny_vlms.py, run by `hf` on the CPU) x the prompts `velm` and `plain`:
   at least 12 cells, each an ordinary run (no response cache, so both executors compute every answer).
   It is run by `harness sweep` in a child process once per executor, timed from the outside (Ray:
   including starting the local instance); the two sweeps' records are then compared cell by cell
   (all fields but the clocks).
2. Ray's overhead: a no-op task's round trip (one at a time, and many in flight), an actor call's, and
   starting an actor (a new worker process), on a local instance of ``--ray-cpus`` CPUs.
3. Replicas: `benchmarks/replicas.py`'s measurement (the real openai plugin through the core's dispatcher
   against loopback servers in their own processes), one replica against two at the same concurrency.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]

import replicas  # noqa: E402  benchmarks/replicas.py
import tiny_vlms  # noqa: E402  tests/tiny_vlms.py

CLOCKS = {"latency_s", "queued_s"}


def sweep_file(folder: Path, model: Path, limit: int) -> Path:
    hf = f"hf:{model}"
    path = folder / "scale.toml"
    path.write_text(
        f'benchmark = "demo"\nlimit = {limit}\nshots = 3\nno-cache = true\n'
        f'[model-options."{hf}"]\nmax_new_tokens = 4\ndtype = "float32"\ndevice = "cpu"\n\n'
        f'[sweep]\nname = "scale"\ncategory = ["label", "tile", "washer"]\nmodels = ["random", "knn", "{hf}"]\n'
        'prompt = ["velm", "plain"]\n', encoding="utf-8")
    return path


def run_sweep(path: Path, executor: str, results: Path, parallel: int) -> float:
    command = [sys.executable, "-c", "from harness.cli import main; main()", "sweep", str(path), "--executor", executor,
               "--results-dir", str(results), "--parallel", str(parallel)]
    began = time.perf_counter()
    child = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if child.returncode != 0:
        raise SystemExit(f"the {executor} sweep failed (exit {child.returncode}):\n{child.stderr[-3000:]}")
    return seconds


def records_of(folder: Path) -> dict:
    lines = [json.loads(line) for line in (folder / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    return {(r["sample_id"], r["model"], r["repeat"]): {k: v for k, v in r.items() if k not in CLOCKS} for r in lines}


def compare(local: Path, on_ray: Path) -> tuple[int, int, int]:
    """(cells, cells whose records are identical apart from the clocks, records compared)."""
    cells = sorted(p.name for p in local.iterdir() if (p / "run.json").is_file())
    same = compared = 0
    for cell in cells:
        a, b = records_of(local / cell), records_of(on_ray / cell)
        same += a == b
        compared += len(a)
    return len(cells), same, compared


def ray_overhead(cpus: int, count: int = 200) -> dict[str, float]:
    """Seconds per no-op task (sequential, and in flight together), per actor call, and to start an actor."""
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        @ray.remote  # one CPU: as many run at once as the instance has CPUs
        def noop():
            return None

        @ray.remote(num_cpus=0)
        class Noop:
            def call(self):
                return None

        ray.get([noop.remote() for _ in range(2 * cpus)])  # workers started outside the timing
        began = time.perf_counter()
        for _ in range(count):
            ray.get(noop.remote())
        sequential = (time.perf_counter() - began) / count
        began = time.perf_counter()
        ray.get([noop.remote() for _ in range(count)])
        together = (time.perf_counter() - began) / count
        began = time.perf_counter()
        actor = Noop.remote()
        ray.get(actor.call.remote())
        start_actor = time.perf_counter() - began
        began = time.perf_counter()
        for _ in range(count):
            ray.get(actor.call.remote())
        actor_call = (time.perf_counter() - began) / count
        return {"task round trip": sequential, f"task, {count} in flight on {cpus} CPUs (per task)": together, "actor call": actor_call,
                "actor start (new process)": start_actor}
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=6, help="test images per category (seeded subset)")
    parser.add_argument("--parallel", type=int, default=1, help="cells at once, both executors")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance for the overhead")
    parser.add_argument("--calls", type=int, default=192, help="timed calls per replica measurement")
    parser.add_argument("--out", type=Path, default=None, help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args()
    print(f"python benchmarks/scale.py --limit {args.limit} --parallel {args.parallel} --ray-cpus {args.ray_cpus} "
          f"--calls {args.calls}")
    print(f"load average {replicas._load()}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        model = tiny_vlms.build("llava", out / "tiny-llava")
        path = sweep_file(out, model, args.limit)
        local = run_sweep(path, "local", out / "local", args.parallel)
        on_ray = run_sweep(path, "ray", out / "ray", args.parallel)
        cells, same, compared = compare(out / "local", out / "ray")
        print(f"sweep: {cells} cells (3 categories x random, knn, tiny hf x velm, plain), --limit {args.limit}, "
              f"--parallel {args.parallel}: local {local:.1f} s, ray {on_ray:.1f} s, ray / local {on_ray / local:.2f}")
        print(f"records identical apart from clocks: {same} of {cells} cells ({compared} records)")
    for name, seconds in ray_overhead(args.ray_cpus).items():
        print(f"ray overhead: {name}: {seconds * 1000:.2f} ms")
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark-not-a-real-key")
    servers = [replicas.start_server(0.15, 4) for _ in range(2)]
    urls = [url for _, url in servers]
    try:
        one, _ = replicas.throughput(urls[:1], 8, args.calls)
        two, split = replicas.throughput(urls, 8, args.calls)
        print(f"replicas (latency 0.15 s, 4 at a time per server, concurrency 8, {args.calls} calls): one "
              f"{one:.1f} calls/s, two {two:.1f} calls/s (split {'/'.join(str(split[u]) for u in urls)}): {two / one:.2f}x")
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait()
    print(f"load average {replicas._load()}")


if __name__ == "__main__":
    main()
