"""Paired comparison of two runs (README, "Comparing two runs"): is model B really better than A?

On the images both runs scored (repeat 0), per model pair, overall and per category: accuracy of A
and B (overall: the benchmark figure of `harness.scoring.metrics`), their difference with a paired
bootstrap interval (one draw of images serves both models), an exact McNemar test on the pooled
discordant images, and the images whose outcome changed. An errored record counts as wrong. Runs
over different image sets are refused unless ``allow_different_manifests``; images whose true label
differs between the runs are then left out and counted.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.scoring.class_order import first_repeat
from harness.errors import HarnessError
from harness.scoring.metrics import bootstrap_accuracy, is_correct, protocol_records
from harness.results import load_run, resolve_run_dir
from harness.record import Record
from harness.run.run_folder import RunFolder


#: The name this module gave `RunFolder` before there was one class for a run folder read.
LoadedRun = RunFolder


def resolve_run(ref: str | Path, results_dir: Path) -> RunFolder:
    """A run given by id under ``results_dir`` or by folder path, with its records."""
    path = resolve_run_dir(ref, results_dir)
    run, records = load_run(path)
    return RunFolder(str(run.get("run_id") or path.name), path, run, records)


def pair_models(run_a: RunFolder, run_b: RunFolder, picks: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Which model of A is compared with which model of B.

    Each pick is ``SPEC`` (in both runs) or ``SPEC_A=SPEC_B``. Without picks: every model both runs
    have, else the only model of each.
    """
    models_a, models_b = run_a.models, run_b.models
    pairs = []
    for pick in picks:
        if pick in models_a and pick in models_b:
            pairs.append((pick, pick))
            continue
        left, sep, right = pick.partition("=")
        if sep and left in models_a and right in models_b:
            pairs.append((left, right))
            continue
        raise HarnessError(
            f"--model {pick!r} names no model pair: use SPEC (a model of both runs) or SPEC_A=SPEC_B; "
            f"run {run_a.run_id} has {', '.join(models_a) or 'no models'}, "
            f"run {run_b.run_id} has {', '.join(models_b) or 'no models'}"
        )
    if pairs:
        return pairs
    common = [m for m in models_a if m in models_b]
    if common:
        return [(m, m) for m in common]
    if len(models_a) == 1 and len(models_b) == 1:
        return [(models_a[0], models_b[0])]
    raise HarnessError(
        f"runs {run_a.run_id} and {run_b.run_id} share no model name; pick pairs with --model SPEC_A=SPEC_B "
        f"(A has {', '.join(models_a) or 'none'}; B has {', '.join(models_b) or 'none'})"
    )


def check_comparable(run_a: RunFolder, run_b: RunFolder, allow_different_manifests: bool) -> list[str]:
    """Refuse runs over different image sets unless allowed; return notes for the report."""
    notes = []
    differs = []
    if run_a.benchmark != run_b.benchmark:
        differs.append(f"benchmark {run_a.benchmark} vs {run_b.benchmark}")
    if run_a.manifest_hash != run_b.manifest_hash:
        differs.append(f"manifest {run_a.manifest_hash} vs {run_b.manifest_hash}")
    if differs:
        if not allow_different_manifests:
            raise HarnessError(
                f"runs {run_a.run_id} and {run_b.run_id} evaluated different image sets ({'; '.join(differs)}); "
                "their figures are not comparable. Add --common-samples to compare them on the images both scored."
            )
        notes.append(f"different image sets ({'; '.join(differs)}): compared on the images both scored only")
    class_files = [((r.run.get("benchmark") or {}).get("class_file") or {}).get("sha256") for r in (run_a, run_b)]
    if class_files[0] != class_files[1]:  # a legitimate comparison (does wording help?), but never silent
        shown = [f"{r.run_id}: {(h or 'none')[:12]}" for r, h in zip((run_a, run_b), class_files)]
        notes.append(f"different class files ({'; '.join(shown)}): the models were shown different class descriptions")
    for loaded in (run_a, run_b):
        if loaded.run.get("status") != "finished":
            notes.append(f"run {loaded.run_id} is {loaded.run.get('status')!r}, not finished")
        repeats = (loaded.run.get("config") or {}).get("repeats", 1)
        if repeats > 1:  # said aloud: the other repeats' answers are not part of the comparison
            notes.append(f"run {loaded.run_id} asked each model {repeats} times (--repeats); "
                         "compared on repeat 0 (the given class order) only")
    return notes


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs, in exact rational arithmetic."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2 ** n)))


def paired_bootstrap(
    pairs_by_category: dict[str, Sequence[tuple[bool, bool]]],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[list[float], dict[str, list[float]]]:
    """Percentile intervals of accuracy(B) - accuracy(A): the mean over categories, and each category's.

    ``pairs_by_category`` holds (A correct, B correct) per image; it is the within-category bootstrap of
    each image's difference, so one draw of images serves both models.
    """
    differences = {
        category: [float(b) - float(a) for a, b in pairs] for category, pairs in pairs_by_category.items()
    }
    return bootstrap_accuracy(differences, n_boot=n_boot, seed=seed, level=level)


def _by_sample(records: list[Record], model: str) -> dict[str, Record]:
    """One record per sample id for ``model`` in repeat 0 (the first, if a sample was recorded twice)."""
    found: dict[str, Record] = {}
    for record in first_repeat(records):
        if record.model == model:
            found.setdefault(record.sample_id, record)
    return found


def _figures(pairs: list[tuple[bool, bool]]) -> dict[str, Any]:
    a = sum(1 for x, _ in pairs if x)
    b_ = sum(1 for _, y in pairs if y)
    only_a = sum(1 for x, y in pairs if x and not y)
    only_b = sum(1 for x, y in pairs if y and not x)
    n = len(pairs)
    return {
        "n": n,
        "accuracy_a": a / n,
        "accuracy_b": b_ / n,
        "difference": (b_ - a) / n,
        "difference_ci": None,
        "a_right_b_wrong": only_a,
        "a_wrong_b_right": only_b,
        "both_right": sum(1 for x, y in pairs if x and y),
        "both_wrong": sum(1 for x, y in pairs if not x and not y),
        "mcnemar_p": mcnemar_exact(only_a, only_b),
    }


def compare_models(
    records_a: list[Record],
    records_b: list[Record],
    model_a: str,
    model_b: str,
    protocol: str = "velm",
    seed: int = 0,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """The paired comparison of ``model_a`` (in records_a) with ``model_b`` (in records_b); see the module doc."""
    a, b = _by_sample(records_a, model_a), _by_sample(records_b, model_b)
    if not a:
        raise HarnessError(f"run A has no records of model {model_a!r}")
    if not b:
        raise HarnessError(f"run B has no records of model {model_b!r}")
    common = [sid for sid in a if sid in b]
    mismatched = [sid for sid in common if a[sid].true_label != b[sid].true_label]
    common = [sid for sid in common if sid not in set(mismatched)]
    # Sorted, so the bootstrap does not depend on the order the records finished in.
    kept = protocol_records([a[sid] for sid in sorted(common)], protocol)
    by_category: dict[str, list[tuple[bool, bool]]] = {}
    changed: dict[str, list[dict[str, Any]]] = {"right_to_wrong": [], "wrong_to_right": []}
    for record_a in kept:
        record_b = b[record_a.sample_id]
        pair = (is_correct(record_a), is_correct(record_b))
        by_category.setdefault(record_a.category, []).append(pair)
        if pair[0] != pair[1]:
            changed["right_to_wrong" if pair[0] else "wrong_to_right"].append({
                "sample_id": record_a.sample_id,
                "category": record_a.category,
                "true_label": record_a.true_label,
                "a": _answer(record_a),
                "b": _answer(record_b),
            })
    result: dict[str, Any] = {
        "model_a": model_a,
        "model_b": model_b,
        "samples": {
            "compared": len(kept),
            "only_in_a": sum(1 for sid in a if sid not in b),
            "only_in_b": sum(1 for sid in b if sid not in a),
            "true_label_differs": len(mismatched),
        },
        "overall": None,
        "categories": {},
        "changed": changed,
    }
    if not by_category:
        return result
    categories = {c: _figures(pairs) for c, pairs in sorted(by_category.items())}
    overall = _figures([p for pairs in by_category.values() for p in pairs])
    # The benchmark figure: per-category accuracy, then the unweighted mean over categories.
    for key in ("accuracy_a", "accuracy_b", "difference"):
        overall[key] = float(np.mean([f[key] for f in categories.values()]))
    overall_ci, category_ci = paired_bootstrap(by_category, n_boot=n_boot, seed=seed)
    overall["difference_ci"] = overall_ci
    for category, ci in category_ci.items():
        categories[category]["difference_ci"] = ci
    result["overall"] = overall
    result["categories"] = categories
    return result


def _answer(record: Record) -> str:
    """What a record answered: the class, or ``error:<kind>``."""
    return f"error:{record.error}" if record.error else str(record.predicted_label)


def compare_runs(
    run_a: RunFolder,
    run_b: RunFolder,
    picks: Sequence[str] = (),
    protocol: str = "velm",
    allow_different_manifests: bool = False,
    seed: int = 0,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Everything `harness compare` prints and writes, as a JSON-serialisable dict."""
    notes = check_comparable(run_a, run_b, allow_different_manifests)
    pairs = pair_models(run_a, run_b, picks)
    records_a, records_b = run_a.typed_records(), run_b.typed_records()
    return {
        "run_a": run_a.describe(),
        "run_b": run_b.describe(),
        "protocol": protocol,
        "seed": seed,
        "n_boot": n_boot,
        "notes": notes,
        "comparisons": [
            compare_models(records_a, records_b, model_a, model_b, protocol=protocol, seed=seed, n_boot=n_boot)
            for model_a, model_b in pairs
        ],
    }
