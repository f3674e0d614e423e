"""Saying why a mask-based figure cannot apply, instead of leaving a bare null.

Masks are optional (a user's own dataset often has none): run.json then says why pixel AUROC is
null in ``pixel_auroc_note``, and the oracle gate's info says why it outlines no ``regions``.
"""

from __future__ import annotations

from typing import Any, Sequence

from harness.types import Category


def mask_summary(category: Category) -> str | None:
    """"k of n anomalous test images have no mask (e.g. PATH)", or None when every one has a mask."""
    missing = [s for s in category.test_samples if s.is_anomalous and s.mask is None]
    if not missing:
        return None
    anomalous = sum(1 for s in category.test_samples if s.is_anomalous)
    return f"{len(missing)} of {anomalous} anomalous test images have no mask (e.g. {missing[0].relpath})"


def no_pixel_auroc_reason(category: Category, gate: str, resumed: bool, had_pairs: bool) -> str:
    """Why a category's pixel AUROC is null, in words for run.json."""
    if resumed:
        return "not computed for a resumed run (the anomaly maps of images scored before the resume are not kept)"
    missing = mask_summary(category)
    if missing:
        return f"{missing}: no ground-truth pixels to rank the anomaly map against"
    if had_pairs:
        return "the masks mark no defect pixel, or only defect pixels, so pixels cannot be ranked"
    return f"the {gate!r} gate does not give an anomaly map for every test image"


def add_pixel_auroc_notes(
    figures: dict[str, Any], categories: Sequence[Category], gate: str, resumed: bool, pairs: dict[str, Any]
) -> None:
    """Add ``pixel_auroc_note`` beside every null pixel AUROC (per category and overall)."""
    notes = []
    for category in categories:
        entry = figures["categories"].get(category.name)
        if entry is None or entry.get("pixel_auroc") is not None:
            continue
        entry["pixel_auroc_note"] = no_pixel_auroc_reason(category, gate, resumed, bool(pairs.get(category.name)))
        notes.append(f"{category.name}: {entry['pixel_auroc_note']}")
    if figures.get("pixel_auroc") is None and notes:
        figures["pixel_auroc_note"] = "; ".join(notes)
