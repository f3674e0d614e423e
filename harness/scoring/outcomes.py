"""What a scored record came out as: its prediction key, whether it is correct, and whom a miss is attributed to.

A record is one dict per (sample, model) as written to ``samples.jsonl``. Its
*prediction key* is its predicted class key, or ``error:<kind>`` when it
failed; an error key never equals a class key, so a failure always counts as
wrong and is never dropped. `harness.scoring.metrics` scores these keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from harness.errors import HarnessError
from harness.types import ERROR_KINDS, GOOD

#: Every outcome `outcome_of` can return, in the order reports list them.
OUTCOMES: tuple[str, ...] = ("correct", "wrong_class", "gate_miss", "gate_false_alarm", *ERROR_KINDS)

#: Prefix of the prediction key of a record that failed with an error.
ERROR_PREFIX = "error:"


class ScoringError(HarnessError, ValueError):
    """Records that cannot be scored against the given label sets (unknown category or label)."""


def pred_key(record: dict[str, Any]) -> str:
    """The prediction key of a record: its predicted class key, or ``error:<kind>``."""
    error = record.get("error")
    if error is not None:
        return ERROR_PREFIX + str(error)
    label = record.get("predicted_label")
    if label is None:
        # A failure must be a recorded error kind, never a missing answer.
        raise ScoringError(
            f"record {record.get('sample_id')!r} (model {record.get('model')!r}) has neither "
            "a predicted_label nor an error"
        )
    return str(label)


def is_correct(record: dict[str, Any]) -> bool:
    """Whether a record's prediction equals its true label (an errored record never is).

    Derived from the labels rather than read from the record's ``correct`` field,
    so that accuracy, the confusion matrix and kappa can never disagree.
    """
    return pred_key(record) == record["true_label"]


def outcome_of(record: dict[str, Any], gate_passes_all: bool = False) -> str:
    """Attribute one record to exactly one entry of `OUTCOMES`.

    In order: the error kind if the record failed; ``correct``; ``gate_miss``
    when an anomalous image was not flagged (so no model ever saw it);
    ``gate_false_alarm`` when a good image was flagged by a real gate and the
    model then named a defect; otherwise ``wrong_class``.

    With a pass-through gate (``gate_passes_all``) every image is flagged by
    construction, so a defect named on a good image is the model's mistake,
    ``wrong_class``, not the gate's.
    """
    error = record.get("error")
    if error is not None:
        return str(error)
    if is_correct(record):
        return "correct"
    gate = record.get("gate")
    # None means "unknown" (no gate result), which blames nobody but the model.
    flagged = bool(gate["flagged"]) if gate else None
    true_label = record["true_label"]
    if true_label != GOOD and flagged is False:
        return "gate_miss"
    if true_label == GOOD and flagged and not gate_passes_all and record.get("predicted_label") != GOOD:
        return "gate_false_alarm"
    return "wrong_class"


def outcome_counts(records: Iterable[dict[str, Any]], gate_passes_all: bool = False) -> dict[str, int]:
    """``{outcome: count}`` over records, every entry of `OUTCOMES` present (zeros included)."""
    counts = Counter(outcome_of(r, gate_passes_all) for r in records)
    return {name: counts.get(name, 0) for name in OUTCOMES}
