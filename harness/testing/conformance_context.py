"""What every conformance check needs: the classifier under test and real runs of the tiny benchmark.

`ConformanceContext` holds the classifier, its options and the tiny benchmark,
and runs the benchmark through the classifier or a variant of it (`run`);
`run_or_fail` does so for one check, recording a failed run as its problem.
`answer_first_candidate` is a loopback responder that answers each request
with a class it lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from harness.classifiers import Classifier
from harness.options import validate_options
from harness.plugins import load_registry
from harness.record import Record
from harness.run.run_folder import RunFolder
from harness.run.runner import Run, RunConfig
from harness.testing.conformance_report import Checker, ConformanceReport
from harness.testing.plugin_helpers import plugin_of
from harness.testing.tiny_benchmark import CATEGORIES, TINY_TEMPLATE, TinyBenchmark

TEMPLATE = TINY_TEMPLATE


class ConformanceContext:
    """What every check needs, and a way to run the tiny benchmark through a variant of the classifier."""

    def __init__(self, classifier: Any, model_id: str | None, spec: str, options: dict, root: Path, work: Path,
                 report: ConformanceReport):
        self.classifier, self.model_id, self.spec, self.options = classifier, model_id, spec, options
        self.root, self.work, self.report = root, work, report
        self.runs = 0
        self.labels = {name: ["good", *classes] for name, (_, classes) in CATEGORIES.items()}

    def instance(self) -> Classifier:
        return self.classifier(self.model_id, validate_options(self.classifier.Options, self.options, self.spec))

    def run(self, classifier: type[Classifier], options: Mapping[str, Any] | None = None,
            limit: int | None = None) -> RunFolder:
        """One real run of the tiny benchmark; returns its run folder (JSON lines, run.json)."""
        self.runs += 1
        plugin = tiny_plugin(classifier, TinyBenchmark(self.root))
        registry = load_registry(extra_plugins=[("harness-conformance", plugin)], entry_points=False)
        config = RunConfig(
            benchmark="tiny", models=[self.spec], gate="none", prompt=TEMPLATE.name,
            model_options={self.spec: dict(options if options is not None else self.options)},
            limit=limit, shots=1 if classifier.needs_support else 0, results_dir=self.work,
            run_id=f"conformance-{self.runs}", use_cache=False, n_boot=20, retry_initial_s=0.001, retry_max_s=0.01,
        )
        return Run(config, registry).execute()


def run_or_fail(check: Checker, context: ConformanceContext, classifier: type[Classifier], options: dict,
                limit: int | None = 1) -> list[Record]:
    """The records of a run for ``check`` (one sample by default); a run that fails, or writes a line that is no
    record, is the check's problem."""
    try:
        records = context.run(classifier, options, limit=limit).typed_records()
    except Exception as error:
        check.expect(False, f"the run failed: {type(error).__name__}: {error}")
        return []
    check.expect(bool(records), "the run wrote no records")
    return records


def tiny_plugin(classifier: type[Classifier], benchmark: TinyBenchmark) -> object:
    """A plugin registering ``classifier``, ``benchmark`` and the conformance template."""
    return plugin_of(classifiers=[classifier], benchmarks=[benchmark], templates=[TEMPLATE])


def answer_first_candidate(context: ConformanceContext) -> Callable:
    """A wire responder naming the first tiny-benchmark class the request's text lists."""
    names = sorted({n for labels in context.labels.values() for n in labels}, key=len, reverse=True)

    def answer(request) -> str:
        text = "\n".join(request.texts()).split("Which class is it?")[-1]
        found = [(text.find(f". {name}:"), name) for name in names if f". {name}:" in text]
        return min(found)[1] if found else "good"

    return answer
