"""run.json as a run starts: what is evaluated, with what, and the provenance to reproduce it.

Functions of a `harness.runner.Run` that has resolved its benchmark, gate,
template and models; the runner adds metrics and status as the run goes on.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from harness.class_order import class_orders
from harness.datasets import manifest_hash
from harness.results import SCHEMA_VERSION, environment_provenance
from harness.run_identity import answer_identity
from harness.types import BenchmarkData

if TYPE_CHECKING:
    from harness.runner import Run


def now_utc() -> str:
    """The current UTC time as run.json writes it (ISO 8601, whole seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_header(runner: Run, run_id: str, data: BenchmarkData, environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """run.json as the run starts; ``environment`` is `environment_provenance()` (looked up when not given)."""
    config = runner.config
    plugins = {name: {"distribution": dist, "version": version} for name, (dist, version) in runner.registry.plugins.items()}
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "status": "running",
        "created_at": now_utc(),
        "finished_at": None,
        "config": config.to_json(),
        "benchmark": {
            "name": data.name,
            "protocol": data.protocol,
            # Null when the benchmark found its own data (the demo, generated in the cache): a reader
            # asks the benchmark again (`harness.data_location`) instead of one machine's cache path.
            "data_root": str(data.root) if config.data_root is not None else None,
            "manifest_hash": manifest_hash(data),
            # The user's class file (harness/class_file.py): its descriptions are part of what was asked.
            "class_file": runner.class_file.describe() if runner.class_file else None,
            "n_samples": len(data.samples),
            "notes": data.notes,
            "support": {c: [s.sample_id for s in samples] for c, samples in runner.support.items()},
            "categories": {
                c.name: {"n_test": len(c.test_samples), "n_train": len(c.train_images), "labels": c.labels}
                for c in data.categories
            },
        },
        "provenance": {
            **(environment if environment is not None else environment_provenance()),
            "seed": config.seed,
            "plugins": plugins,
            "prompt_template": {
                "name": runner.template.name,
                "hash": runner.template.hash,
                "plugin": runner.template_entry.plugin,
            },
            "gate": {**runner.gate.describe(), "categories": {}},
            # endpoint: what answered (a server and API version, a checkpoint), as the response cache keys it;
            # answer_options and options_hash tell the leaderboard's rows apart (harness/run_identity.py).
            "classifiers": {
                c.spec: {**c.describe(), "endpoint": c.endpoint(), **answer_identity(c)} for c in runner.classifiers
            },
            "prices_usd_per_million_tokens": {
                spec: None if price is None else {"input": price.input_per_million, "output": price.output_per_million}
                for spec, price in runner.prices.items()
            },
            "price_table": str(config.prices) if config.prices else "harness/prices.toml",
        },
        "metrics": {},
        **({"class_order": class_order_header(runner, data)} if config.repeats > 1 else {}),
    }


def class_order_header(runner: Run, data: BenchmarkData) -> dict[str, Any]:
    """run.json's record of the orders shown: candidate keys per category and repeat."""
    config = runner.config
    orders = {
        c.name: [[info.key for info in order]
                 for order in class_orders(runner.candidates(c), config.repeats, config.seed, c.name)]
        for c in data.categories
    }
    return {"mode": config.class_order, "repeats": config.repeats,
            "repeat_0": "the given order; repeats 1.. are seeded shuffles", "orders": orders, "models": {}}
