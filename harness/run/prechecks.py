"""Checks a run makes before it spends anything: every one fails with a `HarnessError` naming the culprit.

`harness.run.plan.resolve_parts` calls these while it resolves a run's configuration, so a
mistake that would otherwise surface only after the last paid request (an
unknown ``--output-format``, options for a model spec that is not being run, a
results folder that cannot be written) stops the run before the first one.
The other checks live where their subject is read: option values
(`harness.options.validate_options`), API keys (each hosted backend's
constructor), the price table (`harness.run.pricing.load_prices`) and the decision
policy (`harness.scoring.decisions`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, UnknownNameError
from harness.plugins import Registry


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
