"""run.json as a run starts: what is evaluated, with what, and the provenance to reproduce it.

A function of explicit inputs (`HeaderInputs`, read from the plan), not of the running object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from harness.datasets import manifest_hash
from harness.results import SCHEMA_VERSION, environment_provenance
from harness.run.prompt_memo import PREPARATION_VERSION
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
    plugins: dict[str, dict[str, str]]  # name -> {"distribution", "version"}
    class_file: dict[str, Any] | None  # `UserClassFile.describe`
    support: dict[str, list[str]]  # category -> the ids of the --shots support samples
    template: dict[str, Any]  # name, hash, plugin
    gate: dict[str, Any]  # `Gate.describe`; fitted categories are added as the run goes
    classifiers: dict[str, dict[str, Any]]  # spec -> description, endpoint, answer identity
    prices: dict[str, dict[str, float] | None]  # spec -> USD per million tokens
    class_orders: dict[str, list[list[str]]] | None  # category -> keys per repeat; None with one repeat


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
            # Null when the benchmark found its own data (the demo): readers ask it again, not one machine's cache.
            "data_root": str(data.root) if config.data_root is not None else None,
            "manifest_hash": manifest_hash(data),
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
            # How prompt pictures were drawn: a report redraws them with today's drawing (absent: version 1).
            "prompt_preparation": PREPARATION_VERSION,
            "gate": {**inputs.gate, "categories": {}},
            "classifiers": inputs.classifiers,
            "prices_usd_per_million_tokens": inputs.prices,
            "price_table": str(config.prices) if config.prices else "harness/prices.toml",
        },
        "metrics": {},
        **({"class_order": {
            "mode": config.class_order, "repeats": config.repeats,
            "repeat_0": "the given order; repeats 1.. are seeded shuffles", "orders": inputs.class_orders, "models": {},
        }} if inputs.class_orders is not None else {}),
    }
