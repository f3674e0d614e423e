"""run.json as a run starts: what is evaluated, with what, and the provenance to reproduce it.

A function of explicit inputs: `HeaderInputs`, read once (`header_inputs`) from
the run's resolved plan (`harness.run.plan.RunPlan`: config, benchmark data,
gate, template, models, prices), and the benchmark data itself. Nothing here
reads the running object; the runner adds metrics and status as the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from harness.datasets import manifest_hash
from harness.results import SCHEMA_VERSION, environment_provenance
from harness.run.run_identity import answer_identity
from harness.types import BenchmarkData

if TYPE_CHECKING:
    from harness.run.plan import RunPlan
    from harness.run.run_config import RunConfig


def now_utc() -> str:
    """The current UTC time as run.json writes it (ISO 8601, whole seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class HeaderInputs:
    """What run.json's header records beyond the benchmark data, resolved once as the run starts."""

    config: RunConfig
    #: Plugin name -> {"distribution", "version"}.
    plugins: dict[str, dict[str, str]]
    #: The user's class file as `UserClassFile.describe` gives it; None without one.
    class_file: dict[str, Any] | None
    #: Category -> the ids of the support samples drawn by --shots.
    support: dict[str, list[str]]
    #: The prompt template's name, hash and plugin.
    template: dict[str, Any]
    #: `Gate.describe` (fitted categories are added as the run goes).
    gate: dict[str, Any]
    #: Model spec -> its description, endpoint and answer identity.
    classifiers: dict[str, dict[str, Any]]
    #: Model spec -> prices in USD per million tokens, or None.
    prices: dict[str, dict[str, float] | None]
    #: Category -> candidate keys per repeat; None with a single repeat (no class_order section).
    class_orders: dict[str, list[list[str]]] | None


def header_inputs(plan: RunPlan) -> HeaderInputs:
    """What the header records, read from the run's resolved plan."""
    config = plan.config
    orders = None
    if config.repeats > 1:
        orders = {c.name: [[info.key for info in order] for order in plan.orders(c)] for c in plan.data.categories}
    return HeaderInputs(
        config=config,
        plugins={name: {"distribution": dist, "version": version} for name, (dist, version) in plan.plugins.items()},
        class_file=plan.class_file.describe() if plan.class_file else None,
        support={c: [s.sample_id for s in samples] for c, samples in plan.support.items()},
        template={"name": plan.template.name, "hash": plan.template.hash, "plugin": plan.template_plugin},
        gate=plan.gate.describe(),
        # endpoint: what answered (a server and API version, a checkpoint), as the response cache keys it;
        # answer_options and options_hash tell the leaderboard's rows apart (harness/run/run_identity.py).
        classifiers={c.spec: {**c.describe(), "endpoint": c.endpoint(), **answer_identity(c)} for c in plan.classifiers},
        prices={
            spec: None if price is None else {"input": price.input_per_million, "output": price.output_per_million}
            for spec, price in plan.prices.items()
        },
        class_orders=orders,
    )


def run_header(inputs: HeaderInputs, run_id: str, data: BenchmarkData,
               environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """run.json as the run starts; ``environment`` is `environment_provenance()` (looked up when not given)."""
    config = inputs.config
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
            # asks the benchmark again (`harness.run.data_location`) instead of one machine's cache path.
            "data_root": str(data.root) if config.data_root is not None else None,
            "manifest_hash": manifest_hash(data),
            # The user's class file (harness/run/class_file.py): its descriptions are part of what was asked.
            "class_file": inputs.class_file,
            "n_samples": len(data.samples),
            "notes": data.notes,
            "support": inputs.support,
            "categories": {
                c.name: {"n_test": len(c.test_samples), "n_train": len(c.train_images), "labels": c.labels}
                for c in data.categories
            },
        },
        "provenance": {
            **(environment if environment is not None else environment_provenance()),
            "seed": config.seed,
            "plugins": inputs.plugins,
            "prompt_template": inputs.template,
            "gate": {**inputs.gate, "categories": {}},
            "classifiers": inputs.classifiers,
            "prices_usd_per_million_tokens": inputs.prices,
            "price_table": str(config.prices) if config.prices else "harness/prices.toml",
        },
        "metrics": {},
        **({"class_order": class_order_header(inputs)} if inputs.class_orders is not None else {}),
    }


def class_order_header(inputs: HeaderInputs) -> dict[str, Any]:
    """run.json's record of the orders shown: candidate keys per category and repeat."""
    config = inputs.config
    return {"mode": config.class_order, "repeats": config.repeats,
            "repeat_0": "the given order; repeats 1.. are seeded shuffles", "orders": inputs.class_orders, "models": {}}
