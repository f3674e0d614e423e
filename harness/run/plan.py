"""A run's plan: everything resolved once from its config, before the first sample is touched.

`resolve_plan` takes two steps, so that each mistake surfaces where it always has:
`resolve_parts` (in `Run.__init__`) looks every name up in the registry, builds what the config
alone decides and runs the checks that need no data, so a bad flag stops the run before any file
is read; `load_plan` (in `Run.execute`) reads the benchmark's data and lays the class file, the
``--shots`` support sets and the ``--limit`` subsets over it. A plan never changes once made; its
pieces are plain data, except the classifiers (SDK clients) and the writers and analyses (plugins).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.analyses import Analysis
from harness.classifiers import Classifier, parse_model_spec
from harness.datasets import Benchmark, ReleaseMismatchError
from harness.errors import HarnessError, UnknownNameError
from harness.gates import Gate, gate_mode
from harness.options import validate_options
from harness.plugins import BUILTIN_PLUGIN, Registry
from harness.prompts import PromptTemplate
from harness.run import class_file
from harness.run.pricing import Price, load_prices, price_for
from harness.run.run_config import RunConfig
from harness.run.sampling import draw_support, reference_path, seeded_subset
from harness.scoring import sample_counts
from harness.scoring.class_order import check_class_order, class_orders
from harness.scoring.decisions import CostMatrix, Policy, check_decision_files, load_decision_files
from harness.types import GOOD_CLASS, BenchmarkData, Category, ClassInfo, Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunParts:
    """What the config alone decides: every registry look-up made, every option validated."""

    config: RunConfig
    benchmark: Benchmark
    gate: Gate
    gate_mode: str  # how templates word what the gate did (`harness.gates.gate_mode`)
    template: PromptTemplate
    template_plugin: str | None  # the plugin that registered the template
    classifiers: tuple[Classifier, ...]  # one per --models spec, in that order
    prices: dict[str, Price | None]  # model spec -> its price, or None
    policy: Policy | None
    costs: CostMatrix | None
    writers: dict[str, Any]  # --output-format name -> its result writer, in the order given
    analyses: tuple[Analysis, ...]  # the core's own first (their run.json order), then the plugins'
    plugins: dict[str, tuple[str, str]]  # plugin name -> (distribution, version)

    def candidates(self, category: Category) -> list[ClassInfo]:
        """The candidate classes of a category in the given order (``good`` last when the gate passes all)."""
        return list(category.classes) + ([GOOD_CLASS] if self.gate.passes_all else [])

    def orders(self, category: Category) -> list[list[ClassInfo]]:
        """The candidate classes in the order each repeat shows them (repeat 0: the given order)."""
        return class_orders(self.candidates(category), self.config.repeats, self.config.seed, category.name)

    def reference(self, category: Category):
        """The training normal shown beside each query of ``category`` (chosen by seed), or None."""
        return reference_path(category, self.config.seed)

    @property
    def image_limits(self) -> tuple[Any, ...]:
        """Each model's image limit (`Capabilities.max_images`), in ``--models`` order."""
        return tuple(c.capabilities.max_images for c in self.classifiers)


@dataclass(frozen=True)
class RunPlan(RunParts):
    """`RunParts` with the benchmark's data, as the run evaluates it."""

    data: BenchmarkData  # after the class file, with the support samples taken out and --limit applied
    class_file: class_file.UserClassFile | None
    support: dict[str, list[Sample]]  # category -> the support samples drawn by --shots


def resolve_plan(config: RunConfig, registry: Registry) -> RunPlan:
    """The whole plan of a run: `resolve_parts`, then `load_plan`."""
    return load_plan(resolve_parts(config, registry))


def resolve_parts(config: RunConfig, registry: Registry) -> RunParts:
    """Everything the config decides, checked before any data is read or any model asked."""
    benchmark: Benchmark = registry.get("benchmarks", config.benchmark).obj
    gate_class: type[Gate] = registry.get("gates", config.gate).obj
    if "threshold" in config.gate_options and "threshold" not in gate_class.Options.model_fields:
        raise HarnessError(f"--gate-threshold: gate {config.gate!r} has no threshold (it does not score images); "
                           "only a scoring gate such as patchcore takes one")
    gate = gate_class(validate_options(gate_class.Options, config.gate_options, f"gate {config.gate!r}"))
    mode = gate_mode(gate)
    template_entry = registry.get("templates", config.prompt)
    if not config.models:
        raise HarnessError("no models given; use --models, e.g. --models random")
    # Checked before the first request; option values, API keys and price and policy files where they are read.
    check_model_options(config.model_options, config.models)
    writers = resolve_writers(registry, config.output_formats)
    check_results_dir(config.results_dir)
    classifiers = tuple(_make_classifier(spec, config, registry) for spec in config.models)
    price_table = load_prices(config.prices)
    prices = {c.spec: price_for(c.spec, price_table) for c in classifiers}
    check_class_order(config.class_order, config.repeats)
    policy, costs = load_decision_files(config.policy, config.costs, registry)
    entries = list(registry.analyses.values())
    analyses = [e.obj for e in entries if e.plugin == BUILTIN_PLUGIN] + [e.obj for e in entries if e.plugin != BUILTIN_PLUGIN]
    return RunParts(
        config=config, benchmark=benchmark, gate=gate, gate_mode=mode, template=template_entry.obj,
        template_plugin=template_entry.plugin, classifiers=classifiers, prices=prices, policy=policy, costs=costs,
        writers=writers, analyses=tuple(analyses), plugins=dict(registry.plugins),
    )


def load_plan(parts: RunParts) -> RunPlan:
    """Read the benchmark's data and lay the class file, support sets and subsets over it; checked before any model call."""
    config = parts.config
    data = _load_data(parts.benchmark, config)
    user_classes = class_file.apply_to_run(data, config.classes, data.root)
    in_data = sample_counts.defect_counts(data.categories)
    sample_counts.check_shots(data.categories, config.shots)
    support: dict[str, list[Sample]] = {}
    if config.shots:
        for category in data.categories:
            drawn = draw_support(category.test_samples, config.shots, config.seed)
            chosen = {s.sample_id for s in drawn}
            category.test_samples = [s for s in category.test_samples if s.sample_id not in chosen]
            support[category.name] = drawn
    if config.limit is not None:
        for category in data.categories:
            category.test_samples = seeded_subset(category.test_samples, config.limit, config.seed)
    sample_counts.warn_few_to_score(data, in_data, shots=config.shots, limit=config.limit)
    if not data.samples:
        raise HarnessError(f"benchmark {data.name!r} has no test images at {data.root}")
    check_decision_files(parts.policy, parts.costs, {c.name: c.labels for c in data.categories}, data.name,
                         partial=config.categories is not None)
    return RunPlan(**{f.name: getattr(parts, f.name) for f in fields(RunParts)},
                   data=data, class_file=user_classes, support=support)


def _make_classifier(spec: str, config: RunConfig, registry: Registry) -> Classifier:
    plugin, model_id = parse_model_spec(spec)
    classifier_class: type[Classifier] = registry.get("classifiers", plugin).obj
    if classifier_class.requires_model_id and not model_id:
        raise HarnessError(f"model spec {spec!r} needs a model id: {plugin}:MODEL_ID")
    if classifier_class.needs_support and not config.shots:
        raise HarnessError(f"model {spec!r} learns from labelled examples: add --shots K (e.g. --shots 3)")
    options = validate_options(classifier_class.Options, config.model_options.get(spec), f"model {spec!r}")
    return classifier_class(model_id, options)


def _load_data(benchmark: Benchmark, config: RunConfig) -> BenchmarkData:
    """The benchmark's data as released, or with ``--allow-partial`` the part present on disk."""
    root = config.data_root
    if root is None and benchmark.requires_data_root:
        raise HarnessError(f"benchmark {benchmark.name!r} needs --data-root")
    try:
        return benchmark.load(root, config.categories)
    except ReleaseMismatchError as mismatch:
        if not config.allow_partial or mismatch.partial is None:
            raise
        # The user chose the intersection: say so, and keep the difference for run.json.
        data = mismatch.partial
        data.notes["partial"] = mismatch.difference
        log.warning(
            "--allow-partial: %d released file(s) missing and %d extra file(s) left out; "
            "evaluating the %d present in both", mismatch.difference["missing"], mismatch.difference["extra"],
            len(data.samples),
        )
        return data


def resolve_writers(registry: Registry, names: list[str]) -> dict[str, Any]:
    """The result writer of each ``--output-format`` name, in order; an unknown name lists the known ones."""
    writers = {}
    for name in names:
        try:
            writers[name] = registry.get("writers", name).obj
        except UnknownNameError as error:
            raise HarnessError(f"--output-format {name!r}: {error}") from None
    return writers


def check_model_options(model_options: dict[str, Any], models: list[str]) -> None:
    """Options given for a model spec that is not run would be ignored without a word: refuse them."""
    strays = [spec for spec in model_options if spec not in models]
    if strays:
        raise HarnessError(
            f"model options are given for {', '.join(repr(s) for s in strays)}, which "
            f"{'is' if len(strays) == 1 else 'are'} not among the models run ({', '.join(models)}); "
            "write the table key exactly as the spec in --models (e.g. [model-options.\"openai:gpt-4o\"])"
        )


def check_results_dir(results_dir: Path) -> None:
    """The results folder exists as a writable folder, or can be created (its nearest existing parent is writable)."""
    path = Path(results_dir)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise HarnessError(f"--results-dir {path}: {existing} is a file, not a folder; pick another --results-dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the results folder" if existing == path else f"its parent {existing}"
        raise HarnessError(f"--results-dir {path}: {what} is not writable; pick another --results-dir")
