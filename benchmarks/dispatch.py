"""Dispatch speed: throughput against a 200 ms server, harness overhead, cached re-runs.

    python benchmarks/dispatch.py [--latency-s 0.2] [--calls-per-slot 8] [--profile-cached FILE]

1. Throughput through the real `openai` plugin and SDK against a loopback server
   (its own process) that answers after a fixed latency, at concurrency 1, 8, 64,
   as a fraction of the ideal (concurrency / latency).
2. The dispatcher's own overhead per call (a classifier that answers at once).
3. A whole `harness run` of the demo benchmark (gate none: all 150 images go to
   the model) against the loopback server, then the same command again, answered
   from the response cache. ``--profile-cached FILE`` writes a cProfile of that
   cached re-run alone (read it with ``python -m pstats FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import plugins
from harness.backend_kit import http_backend
from harness.classifiers import ClassifierOptions
from harness.run.dispatch import Dispatcher
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier
from harness.types import ClassInfo, Prompt, TextPart, Message


def start_server(latency_s: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.testing.loopback", "--latency-s", str(latency_s), "--answer", "crack",
         "--max-seconds", "900"],
        stdout=subprocess.PIPE, text=True,
    )
    url = process.stdout.readline().strip()
    return process, url


def prompt(i: int) -> Prompt:
    candidates = [ClassInfo("crack", "crack"), ClassInfo("hole", "hole")]
    messages = [Message("user", [TextPart(f"request {i}: which class?")])]
    return Prompt("bench", messages, candidates, hash="h", request_hash=f"r{i}")


def throughput(base_url: str, concurrency: int, calls: int, latency_s: float) -> tuple[float, float]:
    """Share of the ideal throughput, and this process's CPU seconds per call (the client's cost)."""
    from harness_openai import OpenAIClassifier

    options = OpenAIClassifier.Options(base_url=base_url, concurrency=concurrency, cache=False, timeout_s=60)
    classifier = OpenAIClassifier("gpt-4o", options)

    async def go() -> float:
        dispatcher = Dispatcher(classifier)
        await dispatcher.call(prompt(-1))  # warm the connection pool and the SDK
        began, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(dispatcher.call(prompt(i)) for i in range(calls)))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        await classifier.aclose()
        failed = [r for r in results if r.response is None]
        if failed:
            raise SystemExit(f"{len(failed)} calls failed: {failed[0].detail}")
        return elapsed, cpu

    elapsed, cpu = asyncio.run(go())
    return (calls / elapsed) / (concurrency / latency_s), cpu / calls


def dispatch_overhead(calls: int) -> float:
    classifier_class, _ = scripted_classifier(lambda p: "crack")
    classifier = classifier_class(None, ClassifierOptions(concurrency=1))

    async def go() -> float:
        dispatcher = Dispatcher(classifier)
        began = time.perf_counter()
        for i in range(calls):
            await dispatcher.call(prompt(i))
        return (time.perf_counter() - began) / calls

    return asyncio.run(go())


def demo_runs(base_url: str, results: Path, profile_cached: Path | None = None) -> tuple[float, float, int]:
    registry = plugins.load_registry()
    registry.get("benchmarks", "demo").obj.load(None)  # generate the demo data outside the timing
    spec = "openai:gpt-4o"
    timings = []
    for run_id in ("first", "cached"):
        config = RunConfig(benchmark="demo", gate="none", models=[spec], results_dir=results, run_id=run_id,
                           model_options={spec: {"base_url": base_url, "concurrency": 16}})
        profiler = cProfile.Profile() if profile_cached is not None and run_id == "cached" else None
        began = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        result = Run(config, registry).execute()
        if profiler is not None:
            profiler.disable()
        timings.append(time.perf_counter() - began)
        if profiler is not None:
            profiler.dump_stats(profile_cached)  # after the timing: the profiler slows the run it watches
    cached = sum(1 for r in result.records if r.get("cached"))
    return timings[0], timings[1], cached


def _load() -> str:
    """The 1/5/15-minute load averages: the machine is shared, and the throughput figures move with them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-s", type=float, default=0.2)
    parser.add_argument("--calls-per-slot", type=int, default=8)
    parser.add_argument("--profile-cached", type=Path, default=None,
                        help="write a cProfile of the cached re-run here (its time then includes the profiler's)")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark-not-a-real-key")
    scratch = Path(tempfile.mkdtemp(prefix="harness-bench-"))
    os.environ["HARNESS_CACHE_DIR"] = str(scratch / "cache")  # a cold, private response cache

    server, url = start_server(args.latency_s)
    try:
        print(f"python benchmarks/dispatch.py --latency-s {args.latency_s} --calls-per-slot {args.calls_per_slot}")
        print(f"load average {_load()}; HTTP layer of the SDK: {http_backend()}")
        print(f"{'concurrency':>12} {'calls':>6} {'of ideal':>9} {'client CPU/call':>16}")
        for concurrency in (1, 8, 64):
            calls = concurrency * args.calls_per_slot
            fraction, cpu = throughput(url + "/v1", concurrency, calls, args.latency_s)
            print(f"{concurrency:>12} {calls:>6} {100 * fraction:>8.1f}% {1000 * cpu:>13.2f} ms")
        overhead = dispatch_overhead(2000)
        print(f"dispatcher overhead per call (instant classifier): {1000 * overhead:.3f} ms")
        first, cached, hits = demo_runs(url + "/v1", scratch / "results", args.profile_cached)
        print(f"demo run, gate none, 150 images, concurrency 16: {first:.2f} s; "
              f"re-run from cache: {cached:.3f} s ({hits} cached answers, {first / cached:.0f}x faster)")
        print(f"load average {_load()}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
