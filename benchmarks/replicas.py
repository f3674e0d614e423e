"""Replicas: throughput of one model served by two loopback servers against one, at the same concurrency.

    python benchmarks/replicas.py [--latency-s 0.15] [--server-concurrency 4] [--concurrency 8] [--calls 192] [--rounds 2]

Each server runs in its own process (`python -m harness.testing.loopback`) and answers after a fixed
latency, serving at most ``--server-concurrency`` requests at once (the others wait), as one GPU
holds only so many requests. The client is the real `openai` plugin and SDK through the core's
`Dispatcher`, at ``--concurrency`` requests in flight, given one base URL or both. With the client's
concurrency at least twice a server's, one server is the bottleneck and two should come close to
twice the throughput (target: at least 1.8x). Also printed: how the calls split between the two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections import Counter

from harness.backend_kit import http_backend
from harness.run.dispatch import Dispatcher
from harness.types import ClassInfo, Message, Prompt, TextPart


def start_server(latency_s: float, concurrency: int) -> tuple[subprocess.Popen, str]:
    """A loopback server in its own process (its threads do not share the client's GIL); its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.testing.loopback", "--latency-s", str(latency_s), "--answer", "crack",
         "--concurrency", str(concurrency), "--max-seconds", "900"],
        stdout=subprocess.PIPE, text=True,
    )
    return process, process.stdout.readline().strip() + "/v1"


def prompt(i: int) -> Prompt:
    candidates = [ClassInfo("crack", "crack"), ClassInfo("hole", "hole")]
    return Prompt("bench", [Message("user", [TextPart(f"request {i}: which class?")])], candidates,
                  hash="h", request_hash=f"r{i}")


def throughput(base_urls: list[str], concurrency: int, calls: int) -> tuple[float, Counter]:
    """Calls per second through the plugin at ``concurrency``, and how many each replica answered."""
    from harness_openai import OpenAIClassifier

    options = OpenAIClassifier.Options(base_url=base_urls, concurrency=concurrency, cache=False, timeout_s=60)
    classifier = OpenAIClassifier("vlm", options)

    async def go() -> tuple[float, list]:
        dispatcher = Dispatcher(classifier)
        # Warm every replica's connections and the SDK outside the timing.
        await asyncio.gather(*(dispatcher.call(prompt(-1 - i)) for i in range(concurrency)))
        began = time.perf_counter()
        results = await asyncio.gather(*(dispatcher.call(prompt(i)) for i in range(calls)))
        elapsed = time.perf_counter() - began
        await classifier.aclose()
        return elapsed, results

    elapsed, results = asyncio.run(go())
    failed = [r for r in results if r.response is None]
    if failed:
        raise SystemExit(f"{len(failed)} calls failed: {failed[0].detail}")
    return calls / elapsed, Counter(r.response.replica or base_urls[0] for r in results)


def _load() -> str:
    """The 1/5/15-minute load averages: the machine may be shared, and the figures move with them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-s", type=float, default=0.15, help="each server's service time per request")
    parser.add_argument("--server-concurrency", type=int, default=4, help="requests each server serves at once")
    parser.add_argument("--concurrency", type=int, default=8, help="the client's requests in flight, both cases")
    parser.add_argument("--calls", type=int, default=192, help="timed calls per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each case, alternating")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark-not-a-real-key")
    print(f"python benchmarks/replicas.py --latency-s {args.latency_s} --server-concurrency {args.server_concurrency} "
          f"--concurrency {args.concurrency} --calls {args.calls} --rounds {args.rounds}")
    print(f"load average {_load()}; HTTP layer of the SDK: {http_backend()}")
    ceiling = args.server_concurrency / args.latency_s
    print(f"one server's ceiling: {ceiling:.1f} calls/s ({args.server_concurrency} at a time, {args.latency_s:g} s each)")
    servers = [start_server(args.latency_s, args.server_concurrency) for _ in range(2)]
    urls = [url for _, url in servers]
    try:
        ratios = []
        for round_ in range(1, args.rounds + 1):
            one, _ = throughput(urls[:1], args.concurrency, args.calls)
            two, split = throughput(urls, args.concurrency, args.calls)
            ratios.append(two / one)
            shares = "/".join(str(split[url]) for url in urls)
            print(f"round {round_}: one replica {one:.1f} calls/s ({100 * one / ceiling:.0f}% of its ceiling), "
                  f"two {two:.1f} calls/s (split {shares}): {two / one:.2f}x")
        print(f"two replicas against one at concurrency {args.concurrency}: "
              f"{min(ratios):.2f}-{max(ratios):.2f}x (target: at least 1.8x)")
        print(f"load average {_load()}")
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
