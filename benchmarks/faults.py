"""Samples lost to transient faults: a `harness run` against a server that fails about half of all requests.

    python benchmarks/faults.py [--data-root ../shared/data/mvtec_ad] [--category bottle]
                                [--models openai:m,anthropic:m] [--share 0.5] [--seed 0] [--option max_attempts=4]

Starts a loopback server (127.0.0.1, in this process) that speaks the OpenAI
and Anthropic protocols and fails ``--share`` of all requests with 429
(Retry-After: 1), 429 without Retry-After, 500, 503, 529 or a dropped
connection, equally likely (`harness.testing.loopback_faults`: seeded, so a rerun meets the
same faults). Every other request is answered with the first class the prompt
lists. Then runs, as a separate process,

    harness run --benchmark mvtec-ad --data-root DATA --category bottle --gate oracle \\
        --models openai:m,anthropic:m --config RUN.toml --no-cache --results-dir TMP

where RUN.toml only points each model at the server (``base_url``): retry
settings are the defaults unless ``--option`` sets one for every model. It
prints the records answered and lost, the attempts, and what the server did.
Without the data root (``../shared/data/mvtec_ad`` beside the checkout), it
says so and runs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from harness.results import load_run
from harness.testing.loopback import LoopbackServer
from harness.testing.loopback_faults import fault_mix, first_listed_class

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvtec_ad"


def run_config(server: LoopbackServer, models: list[str], options: dict[str, object]) -> str:
    """A TOML run config pointing each model at the server, plus ``options`` for every model."""
    bases = {"openai": server.openai_base_url, "anthropic": server.anthropic_base_url}
    text = ""
    for spec in models:
        text += f'[model-options."{spec}"]\nbase_url = "{bases[spec.split(":")[0]]}"\n'
        text += "".join(f"{name} = {json.dumps(value)}\n" for name, value in options.items())
    return text


def parse_option(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--benchmark", default="mvtec-ad")
    parser.add_argument("--category", default="bottle")
    parser.add_argument("--gate", default="oracle")
    parser.add_argument("--models", default="openai:m,anthropic:m")
    parser.add_argument("--share", type=float, default=0.5, help="share of all requests that fail (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="which requests fail (default 0)")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a model option for every model, e.g. max_attempts=4 (repeatable)")
    args = parser.parse_args()
    if not (args.data_root / args.category).is_dir():
        print(f"no {args.category} data at {args.data_root}: nothing run", file=sys.stderr)
        return 1
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    options = dict(parse_option(o) for o in args.option)
    responder = fault_mix(first_listed_class, share=args.share, seed=args.seed)
    with tempfile.TemporaryDirectory() as work, LoopbackServer(responder, max_seconds=3600) as server:
        config = Path(work) / "run.toml"
        config.write_text(run_config(server, models, options))
        command = [
            sys.executable, "-c", "from harness.cli import main; main()", "run", "--benchmark", args.benchmark,
            "--data-root", str(args.data_root), "--category", args.category, "--gate", args.gate,
            "--models", ",".join(models), "--config", str(config), "--no-cache",
            "--results-dir", str(Path(work) / "results"), "--run-id", "faults",
        ]
        env = {**os.environ, "OPENAI_API_KEY": "sk-faults-benchmark-0000", "ANTHROPIC_API_KEY": "sk-ant-faults-0000"}
        started = time.perf_counter()
        finished = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if finished.returncode != 0:
            print(finished.stderr, file=sys.stderr)
        _, records = load_run(Path(work) / "results" / "faults")
        outcomes = Counter(r.outcome for r in server.requests)
    called = [r for r in records if r["called"]]
    lost = [r for r in called if r["error"] in ("backend_error", "timeout")]
    attempts = [r["attempts"] for r in called]
    print(f"command: harness {' '.join(command[3:])}")
    print(f"run.toml options for every model: {options or 'none (defaults)'}; exit code {finished.returncode}")
    print(f"records {len(records)}; sent to a model {len(called)}; answered {len(called) - len(lost)}; "
          f"lost {len(lost)} {dict(Counter(r['error'] for r in lost))}")
    print(f"attempts: total {sum(attempts)}, mean {sum(attempts) / max(1, len(attempts)):.2f}, max {max(attempts, default=0)}")
    failed = sum(n for outcome, n in outcomes.items() if outcome != "answer")
    print(f"server: {server.count} requests, {failed} failed ({failed / max(1, server.count):.0%}): {dict(outcomes)}")
    print(f"wall time {wall:.1f} s")
    for record in lost[:5]:
        print(f"  lost: {record['sample_id']} {record['model']}: {record['error_detail'][:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
