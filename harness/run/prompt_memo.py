"""Request keys remembered by file identity, so re-running a finished run need not decode or render.

A cached re-run's keys hash the rendered prompts, and decoding every image again was most of its
time. The memo maps a sample's fingerprint (its files' `file_identity` and the category's
`memo_inputs`) to the gate's verdict, prompt hashes and shown-image digests of last time. A rewritten
file changes its ctime, so it always misses. Used only for gates that do not read pixels, verdicts
without maps, and samples every model would answer from the cache: a recalled sample carries
`KeyOnlyPrompt`s, which `Dispatcher.call` answers from the cache and never sends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from harness import __version__
from harness.run.prompt_record import shown_images
from harness.types import Category, ClassInfo, GateResult, KeyOnlyPrompt, Prompt, Sample

if TYPE_CHECKING:
    from harness.run.cache import ResponseCache
    from harness.run.dispatch import Dispatcher
    from harness.gates import FittedGate, Gate
    from harness.prompts import PromptTemplate

#: Bump it when a change to what turns a sample's files into prompts (decoding, resizing, the visual
#: prompt pictures, rendering, hashing, the none/oracle verdicts, preparation steps, this memo's entry
#: format) would give another verdict, prompt or entry for the same inputs.
PREPARATION_VERSION = 4  # 4: patchcore enlarges maps unantialiased, no TF32 on a GPU (a threshold pixel may move)


def file_identity(path: Path | None) -> list[Any] | None:
    """What says a file is unchanged without reading it: path, size, mtime and ctime (ns), device, inode."""
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return [str(path), None]  # missing: preparing it in full reports the error
    return [str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_dev, stat.st_ino]


def memo_inputs(gate: Gate, fitted: FittedGate, template: PromptTemplate, category: Category,
                orders: Sequence[Sequence[ClassInfo]], limits: Sequence[Any], reference: Path | None,
                support: Sequence[Sample]) -> dict[str, Any]:
    """What decides one category's prepared prompts, apart from each sample's own files."""
    import jinja2
    import numpy
    import PIL

    return {
        "preparation": PREPARATION_VERSION,
        "harness": __version__,
        "libraries": [f"PIL {PIL.__version__}", f"numpy {numpy.__version__}", f"jinja2 {jinja2.__version__}"],
        "gate": [gate.name, gate.mode, _jsonable(getattr(gate, "options", None)), _jsonable(fitted.info())],
        "template": [template.name, template.hash],
        "category": [category.name, category.object_description, category.guidance, _classes(category.classes)],
        "orders": [_classes(order) for order in orders],
        "limits": [str(limit) for limit in limits],
        "reference": file_identity(reference),
        "support": [[s.label, file_identity(s.image), file_identity(s.mask)] for s in support],
    }


def validity_key(inputs: dict[str, Any]) -> str:
    """The hash of `memo_inputs` under which a category's memo entries are stored."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def _classes(infos: Sequence[ClassInfo]) -> list[list[str]]:
    return [[c.key, c.name, c.description] for c in infos]


class PromptMemo:
    """Recall and remember prepared samples of one category of one run (see the module docstring)."""

    def __init__(self, cache: ResponseCache, dispatchers: Sequence[Dispatcher], gate: Gate, fitted: FittedGate,
                 template: PromptTemplate, category: Category, orders: Sequence[Sequence[ClassInfo]],
                 reference: Path | None, support: Sequence[Sample], repeats: int, done: set):
        self.cache = cache
        self.dispatchers = list(dispatchers)
        self.orders = [list(order) for order in orders]
        self.repeats = repeats
        self.done = done
        self.limits = sorted({d.classifier.capabilities.max_images for d in self.dispatchers}, key=str)
        self.enabled = not gate.reads_pixels
        self._base = validity_key(memo_inputs(gate, fitted, template, category, self.orders, self.limits,
                                              reference, support))
        # One query for the whole category: a sample seen before is then a dictionary look-up.
        self._known = cache.prepared_in(self._base) if self.enabled else {}

    def fingerprint(self, sample: Sample) -> str:
        material = [self._base, sample.sample_id, sample.category, sample.label,
                    file_identity(sample.image), file_identity(sample.mask)]
        return hashlib.sha256(json.dumps(material, default=str).encode()).hexdigest()

    def recall(self, sample: Sample) -> tuple[GateResult, dict[tuple[int, Any], Prompt]] | None:
        """The gate verdict and key-only prompts of ``sample``, if remembered and every answer is cached."""
        if not self.enabled:
            return None
        entry = self._known.get(self.fingerprint(sample))
        if entry is None:
            return None
        score, flagged, threshold = entry["gate"]
        prompts: dict[tuple[int, Any], Prompt] = {}
        for repeat, limit, name, prompt_hash, request_hash, shown in entry["prompts"]:
            limit = None if limit is None else int(limit)
            prompts[(repeat, limit)] = KeyOnlyPrompt(name, [], list(self.orders[repeat]), prompt_hash, request_hash,
                                                     shown_digests=dict(shown))
        gate = GateResult(score=score, flagged=flagged, threshold=threshold)
        if flagged:
            for dispatcher in self.dispatchers:
                for repeat in range(self.repeats):
                    if (sample.sample_id, dispatcher.classifier.spec, repeat) in self.done:
                        continue
                    prompt = prompts.get((repeat, dispatcher.classifier.capabilities.max_images))
                    if prompt is None or not dispatcher.is_cached(prompt):
                        return None
        return gate, prompts

    def remember(self, sample: Sample, gate: GateResult | None, prompts: dict[tuple[int, Any], Prompt]) -> None:
        """Store a sample prepared in full, when its verdict can be reused (no maps, no bad input)."""
        if not self.enabled or gate is None or any(  # the raw map first: a gate may compute the others when read
            getattr(gate, name) is not None for name in ("score_map", "region", "anomaly_map")
        ):
            return
        entry = {
            "gate": [float(gate.score), bool(gate.flagged), gate.threshold],
            "prompts": [[repeat, limit, p.template, p.hash, p.request_hash, list(shown_images(p).items())]
                        for (repeat, limit), p in prompts.items()],
        }
        self.cache.put_prepared(self.fingerprint(sample), self._base, entry)


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return value
