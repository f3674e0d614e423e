"""The gallery: misclassified and failed samples per model, with small embedded pictures.

A card shows the outline the model was shown, redrawn from the run's stored region
(`harness.run.prompt_record`) and checked against what was sent, captioned by the gate's mode;
older runs fall back to the ground-truth outline, saying so. The benchmark is loaded again for
masks and the run's references; when it cannot be, only queries are shown and the report says why.
Thumbnails are JPEG data URIs; a missing image becomes a placeholder naming the file.
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from harness.run.data_location import load_run_benchmark, recorded_data_root
from harness.errors import BadInputError, HarnessError
from harness.images import load_mask, load_rgb
from harness.record import Record
from harness.scoring.metrics import outcome_of
from harness.run.prompt_memo import PREPARATION_VERSION
from harness.run.prompt_record import mismatches, redraw
from harness.run.run_folder import RunFolder
from harness.run.class_file import apply_class_file, read_class_file
from harness.run.sampling import reference_path
from harness.types import GOOD, Sample
from harness.visual import outline_region

#: Longest side of a gallery thumbnail, in pixels (shown at about 150 px; sharp on 1.3x screens).
THUMB_SIDE = 200
#: Raw answers longer than this are cut in the card (the full text stays in samples.jsonl).
MAX_ANSWER_CHARS = 600


@dataclass
class Picture:
    """One picture of a card: a data URI, or a placeholder message when it could not be made."""

    caption: str
    uri: str | None = None
    missing: str | None = None


@dataclass
class Card:
    """One (sample, model) that went wrong."""

    model: str
    run_id: str
    sample_id: str
    category: str
    outcome: str
    true_label: str
    predicted: str
    answer: str | None
    answer_cut: bool
    error_detail: str | None
    latency_s: float | None
    gate_score: float | None
    gate_flagged: bool | None
    pictures: list[Picture] = field(default_factory=list)
    #: The model as the gallery filter names it: with the run id when several runs share the model.
    who: str = ""


@dataclass
class Gallery:
    """Cards of one run, plus what the report should say about them."""

    run_id: str
    cards: list[Card]
    shown: dict[str, int]
    total: dict[str, int]
    notes: list[str]


def data_uri(image: Image.Image) -> str:
    """A JPEG data URI of ``image`` shrunk to `THUMB_SIDE` (never enlarged)."""
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.convert("RGB").save(buffer, format="JPEG", quality=82, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def select(records: list[Record], gate: str, per_model: int) -> tuple[dict[str, list[Record]], dict[str, int]]:
    """Up to ``per_model`` wrong or failed records per model, spread over (category, outcome) pairs.

    Taking them round-robin over the pairs (each in sample-id order) keeps every
    filter of the gallery populated instead of filling the cap with the first
    category. Returns the chosen records, each with its ``outcome`` (a run older than that field has it
    derived by `outcome_of`), and the number of wrong ones per model.
    """
    buckets: dict[str, dict[tuple[str, str], list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in sorted(records, key=lambda r: (r.model or "", r.sample_id or "")):
        outcome = record.outcome or outcome_of(record, gate_passes_all=(gate == "none"))
        if outcome == "correct":
            continue
        buckets[record.model][(record.category or "", outcome)].append(replace(record, outcome=outcome))
    chosen: dict[str, list[Record]] = {}
    totals = {model: sum(len(b) for b in pairs.values()) for model, pairs in buckets.items()}
    for model, pairs in buckets.items():
        queues = [list(pairs[key]) for key in sorted(pairs)]
        picked: list[Record] = []
        while len(picked) < per_model and any(queues):
            for queue in queues:
                if queue and len(picked) < per_model:
                    picked.append(queue.pop(0))
        chosen[model] = picked
    return chosen, totals


class _Pictures:
    """Thumbnails for one run, each file read and shrunk once."""

    def __init__(self, run: RunFolder, data_root: Path | None):
        self.run = run
        self.root = data_root or recorded_data_root(run.run)  # None: the benchmark finds its own data
        self.samples: dict[str, Sample] = {}
        self.mode = run_gate_mode(run)
        self.references: dict[str, Path | None] = {}
        self.notes: list[str] = []
        self._cache: dict[tuple, Picture] = {}
        self._redrawn: dict[tuple, tuple[Picture, bool]] = {}  # stored region -> (outlined picture, differs from sent)
        # Which drawing made the run's pictures (runs before it was recorded drew with version 1).
        self._drawn_by = run.run.get("provenance", {}).get("prompt_preparation", 1)
        self._load_benchmark()

    def _load_benchmark(self) -> None:
        """Masks and references come from the benchmark; without it the gallery shows queries only."""
        name = self.run.run["benchmark"]["name"]
        categories = list(self.run.run["benchmark"].get("categories", {})) or None
        try:
            data = load_run_benchmark(self.run.run, self.root, categories)
            self.root = data.root
            recorded = self.run.run["benchmark"].get("class_file")  # its fixed references (harness/run/class_file.py)
            if recorded:
                apply_class_file(data, read_class_file(Path(recorded["path"])))
        except (HarnessError, OSError) as error:
            self.notes.append(
                f"Run {self.run.run_id}: benchmark {name!r} could not be loaded from {self.root or 'where it keeps its data'} ({error}); "
                "the gallery shows query images only (no reference, no outline). Pass --data-root if the data moved."
            )
            return
        seed = int(self.run.run["config"].get("seed", 0))
        for category in data.categories:
            self.references[category.name] = reference_path(category, seed)
            for sample in category.test_samples:
                self.samples[sample.sample_id] = sample

    def _picture(self, key: tuple, caption: str, make) -> Picture:
        if key not in self._cache:
            try:
                self._cache[key] = Picture(caption, uri=data_uri(make()))
            except BadInputError as error:
                self._cache[key] = Picture(caption, missing=str(error))
        cached = self._cache[key]
        return Picture(caption, cached.uri, cached.missing)

    def for_record(self, record: Record) -> list[Picture]:
        if self.root is None:
            return [Picture("query", missing="run.json records no data root; pass --data-root")]
        sample = self.samples.get(record.sample_id)
        query = sample.image if sample else self.root / record.image
        pictures = [self._picture(("query", query), "query", lambda: load_rgb(query))]
        reference = self.references.get(record.category)
        if reference is not None:
            pictures.append(self._picture(("reference", reference), "reference (train normal)", lambda: load_rgb(reference)))
        stored = record.prompt_images or {}
        if stored.get("region"):
            pictures.append(self._shown_outline(record))
        elif sample is not None and sample.mask is not None and record.true_label != GOOD:
            caption = self._truth_caption(record, bool(stored))
            mask = sample.mask
            pictures.append(self._picture(("outlined", query, mask), caption,
                                          lambda: _outlined(load_rgb(query), mask)))
        return pictures

    def _shown_outline(self, record: Record) -> Picture:
        """The outlined query as the record's prompt showed it, redrawn from the run's stored region."""
        stored = record.prompt_images
        key = (record.image, stored.get("reference"), stored["region"])
        if key not in self._redrawn:
            try:
                line = record.to_json()  # harness.run.prompt_record reads records as their JSON line
                images = redraw(self.run.run_dir, line, self.root)
                self._redrawn[key] = (Picture("", uri=data_uri(images["outlined"])), "outlined" in mismatches(images, line))
            except BadInputError as error:
                self._redrawn[key] = (Picture("", missing=str(error)), False)
        picture, differs = self._redrawn[key]
        whose = {"detector": "detector's region", "oracle": "annotated region"}.get(self.mode, "gate's region")
        if "outlined" not in (stored.get("shown") or {}):
            caption = f"{whose} (not shown to the model: its prompt had no outline)"
        elif differs and self._drawn_by != PREPARATION_VERSION:
            caption = (f"{whose}, redrawn with this harness's drawing; the run drew its pictures another way "
                       f"(preparation {self._drawn_by}, now {PREPARATION_VERSION}), so this is not the picture sent")
        elif differs:
            caption = f"{whose}, redrawn, but not the picture sent (a data file changed since the run)"
        else:
            caption = f"{whose}, outlined as the model saw it"
        return Picture(caption, picture.uri, picture.missing)

    def _truth_caption(self, record: Record, stored: bool) -> str:
        """The caption of a ground-truth outline: why it is shown instead of what the model saw."""
        if record.gate is None:
            return "ground-truth region"  # imported predictions, or an unreadable image: no gate verdict
        if not record.gate.flagged:
            return "ground-truth region (the gate passed it; no model saw it)"
        if self.mode == "none":
            return "ground-truth region (gate none: the model saw no outline)"
        if stored:
            return "ground-truth region (the gate gave no region: the model saw no outline)"
        if self.mode == "oracle":
            return "annotated region (this run predates stored prompt images: not the exact picture sent)"
        return "ground-truth region (this run predates stored prompt images: the detector's region was not kept)"


def run_gate_mode(run: RunFolder) -> str:
    """The run's gate mode: run.json's (``provenance.gate.mode``), or for older runs the one its gate name implies."""
    recorded = ((run.run.get("provenance") or {}).get("gate") or {}).get("mode")
    if recorded:
        return recorded
    return {"oracle": "oracle", "none": "none"}.get(run.gate, "detector")


def _outlined(image: Image.Image, mask_path: Path) -> Image.Image:
    # Outline at full size, then shrink, so the line keeps its proportion to the picture.
    region = load_mask(mask_path, image.size)
    return outline_region(image, region, width=max(3, round(0.012 * min(image.size))))


def build(run: RunFolder, per_model: int, data_root: Path | None = None, ambiguous: frozenset[str] = frozenset()) -> Gallery:
    """The gallery cards of one run; models in ``ambiguous`` (also in other runs) are named with the run id."""
    chosen, totals = select(run.typed_records(), run.gate, per_model)
    pictures = _Pictures(run, data_root) if any(chosen.values()) else None
    cards = []
    for model, records in chosen.items():
        for record in records:
            answer, error, gate = record.response, record.error, record.gate
            cards.append(Card(
                model=model,
                run_id=run.run_id,
                sample_id=str(record.sample_id),
                category=str(record.category),
                outcome=record.outcome,
                true_label=str(record.true_label),
                predicted=f"error: {error}" if error else str(record.predicted_label),
                answer=None if answer is None else str(answer)[:MAX_ANSWER_CHARS],
                answer_cut=answer is not None and len(str(answer)) > MAX_ANSWER_CHARS,
                error_detail=record.error_detail,
                latency_s=record.latency_s if record.called else None,
                gate_score=gate.score if gate else None,
                gate_flagged=gate.flagged if gate else None,
                pictures=pictures.for_record(record) if pictures else [],
                who=f"{model} ({run.run_id})" if model in ambiguous else model,
            ))
    notes = list(pictures.notes) if pictures else []
    missing = sorted({p.missing for c in cards for p in c.pictures if p.missing})
    if missing:
        notes.append(f"Run {run.run_id}: {len(missing)} picture(s) could not be read; the cards show which file. "
                     f"First: {missing[0]}")
    shown = {model: len(records) for model, records in chosen.items()}
    return Gallery(run.run_id, cards, shown, totals, notes)
