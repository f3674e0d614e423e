"""Batch mode against live mode: the demo (gate none: all 150 images asked) through ``openai:gpt-4o`` at a
loopback server, once live and once with ``--batch``, alternating for ``--rounds`` rounds.

    python benchmarks/batch_mode.py [--rounds 2]

Printed per run: wall time, requests, total cost (batch: the price table's discount), the answers; then
the bytes of the uploaded batch files and per request, which is what OpenAI's 200 MB per file and
Anthropic's 256 MB per batch are counted against. Nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from harness import plugins
from harness.run.runner import Run, RunConfig
from harness.testing.loopback import LoopbackServer

SPEC = "openai:gpt-4o"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-loopback-not-a-real-key")
    with LoopbackServer("scratch") as server, tempfile.TemporaryDirectory() as folder:
        server.batches.polls_to_complete = 1  # each batch ends on its second retrieval
        asked = []
        for round_number in range(args.rounds):
            for batch in (False, True):
                out = Path(folder) / f"r{round_number}-{batch}"
                config = RunConfig(benchmark="demo", gate="none", models=[SPEC], n_boot=100, use_cache=False,
                                   model_options={SPEC: {"base_url": server.openai_base_url, "concurrency": 16}},
                                   results_dir=out, run_id="m", batch=batch, batch_poll_s=0.05)
                started = time.perf_counter()
                result = Run(config, plugins.load_registry()).execute()
                wall = time.perf_counter() - started
                asked = [r for r in result.records if r["called"]]
                answers = sorted({str(r["predicted_label"]) for r in asked})
                print(f"{'batch' if batch else 'live '}: {wall:.2f} s, {len(asked)} requests, "
                      f"cost ${sum(r['cost_usd'] for r in asked):.4f}, answers {answers}")
                shutil.rmtree(out)
        uploads = [len(v) for k, v in server.batches.files.items() if "-output" not in k and "-error" not in k]
        print(f"uploaded batch files: {uploads} bytes; {uploads[0] / len(asked) / 1e6:.3f} MB per request")


if __name__ == "__main__":
    main()
