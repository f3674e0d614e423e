"""Predictions made outside the harness, turned into a normal run (``harness score``).

Each prediction becomes a record shaped as `harness run` writes it (model ``imported:<name>``, no
gate, no prompt), scored by `harness.scoring.metrics`. Formats: ``velm``, the VELM release's one
JSON object mapping ``<category>_<class folder>_<file stem>`` to a predicted name; ``jsonl``, one
object per line with ``predicted_label`` and ``sample_id`` (or ``category`` plus ``image``, the path
from the data root or the category folder). A predicted name is read by `answers.read_answer`
against the category's classes plus ``good`` (also ``normal``); a bare number is ``unparseable``
(the order the system saw the classes in is unknown). Images without a prediction and keys that
match no image are reported, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from harness.datasets import Benchmark, ReleaseMismatchError, manifest_hash
from harness.errors import HarnessError
from harness.run.failfast import call_failures
from harness.record import Record
from harness.scoring import answers, metrics
from harness.results import SCHEMA_VERSION, RunFiles, environment_provenance, new_run_id
from harness.types import GOOD, GOOD_CLASS, BenchmarkData, ClassInfo, Sample

MODEL_PREFIX = "imported:"
#: Other names of ``good`` in published predictions and manifests.
GOOD_ALIASES = ("normal",)
#: Samples or keys listed by name in messages before the rest are only counted.
SHOW = 10

#: A bare number, after `answers.normalize` (which drops ``#``, brackets and dots).
_NUMBER_ONLY = re.compile(r"^(?:option|choice|number|no|class|candidate)?\s*\d+$")


@dataclass
class Imported:
    """Predictions matched to a benchmark's samples."""

    records: list[Record]
    samples: list[Sample]  # the scored ones, in benchmark order
    missing: list[str]  # sample ids without a prediction
    unmatched: list[str]  # keys that name no sample
    aliased: list[str] = field(default_factory=list)  # keys matched through a class alias
    key_forms: str = ""  # the names an image may be given by, with this benchmark's examples (for messages)

    def report(self) -> dict[str, Any]:
        """The account of the import that run.json keeps."""
        return {
            "n_predictions": len(self.records) + len(self.unmatched),
            "n_scored": len(self.records),
            "missing": {"count": len(self.missing), "samples": self.missing},
            "unmatched": {"count": len(self.unmatched), "keys": self.unmatched},
            "aliased": {"count": len(self.aliased), "keys": self.aliased},
        }


# --------------------------------------------------------------------------- prediction files

FORMATS: tuple[str, ...] = ("velm", "jsonl")


@dataclass(frozen=True)
class Entry:
    """One prediction as read: where it is in the file, what names the image, the predicted text."""

    where: str
    key: str
    text: str | None
    category: str | None = None  # jsonl lines that name the image by category + path


def read_predictions(path: Path, fmt: str) -> list[Entry]:
    """Every prediction in ``path``, or a `HarnessError` naming the file and what was expected."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown predictions format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise HarnessError(f"{path}: predictions file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise HarnessError(f"{path}: not UTF-8 text ({error})") from None
    return _read_velm(path, text) if fmt == "velm" else _read_jsonl(path, text)


class _Pairs(list):
    """A JSON object read as its (key, value) pairs, so repeated keys are seen, not silently merged."""


def _read_velm(path: Path, text: str) -> list[Entry]:
    expected = "one JSON object mapping <category>_<class>_<NNN> to a predicted class name"
    try:
        pairs = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as error:
        raise HarnessError(f"{path}: not valid JSON ({error}); format velm expects {expected}") from None
    if not isinstance(pairs, _Pairs):
        raise HarnessError(f"{path}: format velm expects {expected}, but the file holds {_kind(pairs)}")
    entries = []
    for key, value in pairs:
        if value is not None and not isinstance(value, str):
            raise HarnessError(
                f"{path}: the prediction for {key!r} is {_kind(value)}; format velm expects a class name string"
            )
        entries.append(Entry(where=f"key {key!r}", key=key, text=value))
    if not entries:
        raise HarnessError(f"{path}: holds no predictions; format velm expects {expected}")
    return entries


def _kind(value: Any) -> str:
    """What a JSON value is, in words, for messages."""
    if isinstance(value, _Pairs):
        return "a JSON object"
    if isinstance(value, bool):
        return "a boolean"
    return {list: "a JSON array", str: "a string", int: "a number", float: "a number", dict: "a JSON object"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _read_jsonl(path: Path, text: str) -> list[Entry]:
    expected = "one JSON object per line with predicted_label and sample_id (or category and image)"
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise HarnessError(f"{where}: not valid JSON ({error}); format jsonl expects {expected}") from None
        if not isinstance(obj, dict):
            raise HarnessError(f"{where}: holds {_kind(obj)}; format jsonl expects {expected}")
        if "predicted_label" not in obj:
            raise HarnessError(f"{where}: no predicted_label; format jsonl expects {expected}")
        label = obj["predicted_label"]
        if label is not None and not isinstance(label, str):
            raise HarnessError(f"{where}: predicted_label is {_kind(label)}; expected a class name string or null")
        if isinstance(obj.get("sample_id"), str):
            entries.append(Entry(where=f"line {number}", key=obj["sample_id"], text=label))
        elif isinstance(obj.get("category"), str) and isinstance(obj.get("image"), str):
            entries.append(Entry(where=f"line {number}", key=obj["image"], text=label, category=obj["category"]))
        else:
            raise HarnessError(f"{where}: names no image; format jsonl expects sample_id, or category and image")
    if not entries:
        raise HarnessError(f"{path}: holds no predictions; format jsonl expects {expected}")
    return entries


# --------------------------------------------------------------------------- matching and parsing


def velm_key(sample: Sample, folder: str | None = None) -> str:
    """The VELM release's key of a sample: ``<category>_<class folder>_<file stem>``."""
    return f"{sample.category}_{folder or sample.label}_{PurePosixPath(sample.relpath).stem}"


def _index(data: BenchmarkData, aliases: dict[str, dict[str, str]]) -> tuple[dict[str, Sample], set[str]]:
    """Every name a prediction may give an image by (case-folded), and which of them come from aliases."""
    index: dict[str, Sample] = {}
    through_alias: set[str] = set()
    for sample in data.samples:
        index[sample.sample_id.casefold()] = sample
        index[sample.relpath.casefold()] = sample
        index[velm_key(sample).casefold()] = sample
        for alias, folder in aliases.get(sample.category, {}).items():
            if folder == sample.label:
                key = velm_key(sample, alias).casefold()
                index.setdefault(key, sample)
                through_alias.add(key)
    return index, through_alias


def key_forms(data: BenchmarkData) -> str:
    """The ways a prediction may name an image, with examples from ``data`` (for messages on unmatched keys)."""
    if not data.samples:
        return "sample_id, a VELM key, or category + image (the path from the data root)"
    sample = data.samples[0]
    inside = PurePosixPath(sample.relpath).relative_to(sample.category) if sample.relpath.startswith(
        sample.category + "/") else None
    image = f"image {sample.relpath!r} (the path from the data root" + (f", or {str(inside)!r} from the category folder)"
                                                                        if inside else ")")
    return (f"expected sample_id {sample.sample_id!r}, VELM key {velm_key(sample)!r}, or (jsonl) category "
            f"{sample.category!r} with {image}; absolute paths and paths from other folders match nothing")


def _lookup(entry: Entry, index: dict[str, Sample]) -> Sample | None:
    if entry.category is None:
        return index.get(entry.key.casefold())
    image = entry.key.lstrip("/")
    for candidate in (image, f"{entry.category}/{image}"):
        sample = index.get(candidate.casefold())
        if sample is not None and sample.category == entry.category:
            return sample
    return None


def candidates_for(data: BenchmarkData, category: str, aliases: dict[str, dict[str, str]]) -> list[ClassInfo]:
    """The classes a prediction for ``category`` may name: its classes, ``good``, and their other names."""
    info = next(c for c in data.categories if c.name == category)
    extra = [ClassInfo(key=folder, name=alias) for alias, folder in aliases.get(category, {}).items()]
    extra += [ClassInfo(key=GOOD, name=name) for name in GOOD_ALIASES]
    return list(info.classes) + [GOOD_CLASS] + extra


def read_prediction(text: str | None, candidates: list[ClassInfo], mode: str = "lenient") -> answers.Reading:
    """How one imported prediction reads (a missing one and a bare number are ``unparseable``)."""
    if text is None:
        return answers.Reading(None, answers.UNPARSEABLE, "none", "no prediction")
    if text.strip() and _NUMBER_ONLY.match(answers.normalize(text)):
        return answers.Reading(None, answers.UNPARSEABLE, "none", "a bare number: the order of the classes is unknown")
    return answers.read_answer(text, candidates, mode=mode)


def match_predictions(
    data: BenchmarkData, entries: list[Entry], name: str, source: Path,
    aliases: dict[str, dict[str, str]] | None = None, answers_mode: str = "lenient",
) -> Imported:
    """Records for the samples that have a prediction; the rest reported, never dropped silently."""
    aliases = aliases or {}
    index, through_alias = _index(data, aliases)
    chosen: dict[str, tuple[Entry, Sample]] = {}
    unmatched, aliased = [], []
    for entry in entries:
        sample = _lookup(entry, index)
        if sample is None:
            unmatched.append(entry.key if entry.category is None else f"{entry.category}:{entry.key}")
            continue
        if entry.key.casefold() in through_alias:
            aliased.append(entry.key)
        previous = chosen.get(sample.sample_id)
        if previous is not None and previous[0].text != entry.text:
            raise HarnessError(
                f"{source}: two different predictions for image {sample.relpath}: "
                f"{previous[0].text!r} ({previous[0].where}) and {entry.text!r} ({entry.where})"
            )
        chosen.setdefault(sample.sample_id, (entry, sample))
    if not chosen:
        raise HarnessError(
            f"{source}: none of its {len(entries)} prediction(s) names an image of {data.name} "
            f"(first key: {unmatched[0] if unmatched else None!r}; {key_forms(data)})"
        )
    model = MODEL_PREFIX + name
    candidates = {c.name: candidates_for(data, c.name, aliases) for c in data.categories}
    records, scored, missing = [], [], []
    for sample in data.samples:
        if sample.sample_id not in chosen:
            missing.append(sample.sample_id)
            continue
        entry, _ = chosen[sample.sample_id]
        records.append(_record(data.name, sample, entry, model, candidates[sample.category], answers_mode))
        scored.append(sample)
    return Imported(records, scored, missing, unmatched, aliased, key_forms(data))


def _record(benchmark: str, sample: Sample, entry: Entry, model: str, candidates: list[ClassInfo],
            answers_mode: str) -> Record:
    reading = read_prediction(entry.text, candidates, answers_mode)
    predicted, error = reading.pair
    return Record.of(
        sample, benchmark, model, predicted_label=predicted, error=error,
        error_detail=None if error is None else f"{entry.where}: {entry.text!r} names no class of "
                                                f"{sample.category!r} ({reading.detail})",
        transient=False,  # an answer that names no class: asking again cannot help
        gate=None, served_model=None, prompt=None,
        prompt_images=None,  # no prompt of ours was shown
        repeat=0, class_order=None, called=False, response=entry.text, option_scores=None,
        answer_rule=reading.rule, latency_s=None, queued_s=None, attempts=0, attempts_total=0, cached=False,
        tokens_in=None, tokens_out=None, cost_usd=None, imported_key=entry.key,
    )


# --------------------------------------------------------------------------- the run


def load_benchmark_data(benchmark: Benchmark, data_root: Path | None, categories: list[str] | None,
                        allow_partial: bool = False) -> BenchmarkData:
    """The test set to score against: the data root's when given, else the benchmark's released file list."""
    if data_root is None:
        data = benchmark.released(categories)
        if data is None and not benchmark.requires_data_root:
            return benchmark.load(None, categories)  # brings its own data (the demo)
        if data is None:
            raise HarnessError(
                f"benchmark {benchmark.name!r} publishes no fixed file list to score against: pass --data-root"
            )
        return data
    try:
        return benchmark.load(data_root, categories)
    except ReleaseMismatchError as mismatch:
        if not allow_partial or mismatch.partial is None:
            raise
        mismatch.partial.notes["partial"] = mismatch.difference
        return mismatch.partial


def score_predictions(
    benchmark: Benchmark, data: BenchmarkData, predictions: Path, fmt: str, name: str, results_dir: Path,
    run_id: str | None = None, seed: int = 0, n_boot: int = 1000, config: dict[str, Any] | None = None,
    plugins: dict[str, Any] | None = None, answers_mode: str = "lenient",
) -> tuple[Path, dict[str, Any], Imported]:
    """Read, match, score and write one imported run; returns (run folder, run.json content, the import)."""
    if not name or "/" in name or name != name.strip():
        raise HarnessError(f"--name {name!r}: give a short name without slashes, e.g. velm-gpt-4o")
    answers.check_mode(answers_mode)
    config = config or {}
    entries = read_predictions(predictions, fmt)
    imported = match_predictions(data, entries, name, predictions, data.notes.get("class_aliases"), answers_mode)
    scored_ids = {s.sample_id for s in imported.samples}
    scored = replace(data, categories=[
        replace(c, test_samples=[s for s in c.test_samples if s.sample_id in scored_ids])
        for c in data.categories if any(s.sample_id in scored_ids for s in c.test_samples)
    ])
    label_sets = {c.name: c.labels for c in scored.categories}
    model = MODEL_PREFIX + name
    run_id = run_id or new_run_id(data.name)
    run_dir = results_dir / run_id
    if (run_dir / "run.json").exists():
        raise HarnessError(f"{run_dir} already holds a run; pick another --run-id")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    digest = hashlib.sha256(predictions.read_bytes()).hexdigest()
    run = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "status": "finished", "created_at": now, "finished_at": now,
        "config": {
            "benchmark": data.name, "data_root": config.get("data_root"), "categories": config.get("categories"),
            "gate": "imported", "gate_options": {}, "models": [model], "model_options": {}, "prompt": "imported",
            "seed": seed, "limit": None, "n_boot": n_boot, "shots": 0,
            "allow_partial": bool(config.get("allow_partial")),
            "predictions": str(predictions), "format": fmt, "answers": answers_mode,
        },
        "benchmark": {
            "name": data.name, "protocol": data.protocol, "data_root": config.get("data_root"),
            "manifest_hash": manifest_hash(scored), "n_samples": len(scored.samples), "support": {},
            "notes": data.notes,
            "categories": {
                c.name: {"n_test": len(c.test_samples), "n_train": len(c.train_images), "labels": c.labels}
                for c in scored.categories
            },
        },
        "provenance": {
            **environment_provenance(), "seed": seed, "plugins": plugins or {}, "prompt_template": None, "gate": None,
            "classifiers": {model: {"imported_from": str(predictions), "format": fmt, "sha256": digest}},
        },
        "imported": {"file": str(predictions), "format": fmt, "sha256": digest, **imported.report()},
        "metrics": {model: metrics.score_model(imported.records, label_sets, seed=seed, n_boot=n_boot)},
        "call_failures": call_failures(imported.records, [model]),  # no call was made: zeros, as harness run writes
        "gate_metrics": None,
    }
    files = RunFiles(run_dir)
    try:
        for record in imported.records:
            files.append_record(record.to_json())
        files.write_run(run)
    finally:
        files.close()
    return run_dir, run, imported
