"""Closed-set answer reading: from a model's reply to one candidate class or an error kind, and the rule that decided.

`read_answer` tries the rules of `RULES` in order (README, "How answers are read"); the first that
decides gives the `Reading`. ``structured`` and ``json`` read an answer field (`ANSWER_FIELDS`) of a
JSON object (a field naming no candidate, or objects that disagree, are ``unparseable``); ``exact``
and ``number`` the whole reply; ``final_answer`` the last final-answer line
(`harness.scoring.answer_tokens.final_answers`) whose answer is exactly a candidate or a number (one
that is not is read by its stances; one naming no class passes to the line before it); ``mention``,
``refusal`` and ``none`` the stance of every class the reply mentions
(`harness.scoring.answer_scope`). The parser never guesses: a class counts only when the reply
asserts it, and several asserted classes are ``unparseable``.

Strict mode (``--answers strict``) keeps only `STRICT_RULES` readings; any other is ``unparseable``
with rule ``none`` and a detail naming what lenient mode would have read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from harness.scoring import answer_vocab
from harness.scoring.answer_scope import Stances, read_stances
from harness.scoring.answer_tokens import candidate_forms, final_answers, phrase, tokenize, trimmed
from harness.errors import HarnessError
from harness.types import GOOD, ClassInfo

UNPARSEABLE = "unparseable"
REFUSED = "refused"

#: Every rule name a `Reading` (and a record's ``answer_rule``) may carry, in the order they are tried.
RULES: tuple[str, ...] = (
    "structured", "json", "exact", "number", "final_answer", "mention", "option_score", "refusal", "none",
)
#: The readings strict mode keeps: no interpretation of free text.
STRICT_RULES = frozenset(("structured", "json", "exact", "final_answer", "option_score"))
#: Answer-reading modes (``harness run --answers``).
MODES: tuple[str, ...] = ("lenient", "strict")

#: JSON fields that hold the answer, in order of preference.
ANSWER_FIELDS = ("class", "label", "answer", "defect", "class_name", "defect_class", "defect_type")

_PREFIX_RE = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+)?(?:answer|class|label|prediction|defect(?:\s+(?:class|type))?)"
    r"(?:\s*[:=\-]|\s+is\s*:?)\s*",
    re.IGNORECASE,
)
_MARKDOWN_RE = re.compile(r"[*`#]+")
#: Check marks keep their meaning ("Hole: ✗" is no answer), where `normalize` would drop them.
_MARKS = str.maketrans({mark: " yes " for mark in "✓✔✅☑"} | {mark: " no " for mark in "✗✘❌"})
_ARTICLE_RE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)
_NUMBER_RE = re.compile(r"^(?:option|choice|number|no|class|candidate)?\s*(\d{1,3})$")
_RAW_NUMBER_RE = re.compile(r"^\s*(?:#|\(|\[)?\s*(\d{1,3})\s*(?:\)|\]|\.)?\s*$")


@dataclass(frozen=True)
class Reading:
    """How a reply was read: a class ``key`` or an ``error`` kind, the ``rule`` that decided, and why."""

    key: str | None
    error: str | None
    rule: str
    detail: str | None = None

    @property
    def pair(self) -> tuple[str | None, str | None]:
        """(class key, error kind), as `parse_answer` returns it."""
        return self.key, self.error


def check_mode(mode: str, option: str = "--answers") -> str:
    """``mode`` when it is one of `MODES`, else a `HarnessError` naming ``option``."""
    if mode not in MODES:
        raise HarnessError(f"{option} {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def normalize(text: str) -> str:
    """Case-fold; underscores, dashes and punctuation to spaces; whitespace collapsed."""
    text = text.casefold()
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(text.split())


def _clean(text: str) -> str:
    """The answer without markdown emphasis, a leading ``Answer:``-style prefix and a leading article."""
    text = _MARKDOWN_RE.sub("", text).translate(_MARKS).strip()
    return _ARTICLE_RE.sub("", _PREFIX_RE.sub("", text, count=1), count=1)


def _forms(candidates: Sequence[ClassInfo]) -> dict[str, set[str]]:
    """Normalised name or key (and good's other names, when good is a candidate) -> the keys it may denote."""
    forms: dict[str, set[str]] = {}
    for c in candidates:
        for form in {normalize(c.name), normalize(c.key)}:
            if form:
                forms.setdefault(form, set()).add(c.key)
    if any(c.key == GOOD for c in candidates):
        for alias in answer_vocab.GOOD_EXACT:
            forms.setdefault(normalize(alias), set()).add(GOOD)
    return forms


def _only(keys: Iterable[str]) -> str | None:
    keys = set(keys)
    return next(iter(keys)) if len(keys) == 1 else None


def _exact(text: str, candidates: Sequence[ClassInfo]) -> str | None:
    return _only(_forms(candidates).get(normalize(_clean(text)), ()))


def _numbered(text: str, candidates: Sequence[ClassInfo]) -> str | None:
    cleaned = _clean(text)
    match = _RAW_NUMBER_RE.match(cleaned) or _NUMBER_RE.match(normalize(cleaned))
    if not match:
        return None
    index = int(match.group(1))
    if 1 <= index <= len(candidates):
        return candidates[index - 1].key
    return None


def _json_objects(text: str) -> Iterable[dict]:
    decoder = json.JSONDecoder()
    pos = text.find("{")
    while pos != -1:
        try:
            value, end = decoder.raw_decode(text, pos)
        except ValueError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(value, dict):
            yield value
        pos = text.find("{", end)


def _json_answers(text: str) -> list[object]:
    """The answer field of each JSON object in the text that has one."""
    answers = []
    for obj in _json_objects(text):
        fields = {str(k).casefold(): v for k, v in obj.items()}
        for name in ANSWER_FIELDS:
            if name in fields:
                answers.append(fields[name])
                break
    return answers


def _read_value(value: object, candidates: Sequence[ClassInfo]) -> tuple[str, str] | None:
    """(key, "exact" or "number") for a JSON answer value, None when it names no candidate."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    if (key := _exact(value, candidates)) is not None:
        return key, "exact"
    if (key := _numbered(value, candidates)) is not None:
        return key, "number"
    return None


def _read_json(text: str, candidates: Sequence[ClassInfo], rule: str) -> Reading | None:
    """Rule 1 or 3: None when the text holds no JSON answer field."""
    values = _json_answers(text)
    if not values:
        return None
    readings = {_read_value(v, candidates) for v in values}
    if None in readings:
        shown = next(v for v in values if _read_value(v, candidates) is None)
        return Reading(None, UNPARSEABLE, "none", f"JSON answer {shown!r} names no candidate class")
    if len(readings) > 1:
        return Reading(None, UNPARSEABLE, "none", f"JSON answers disagree: {', '.join(map(repr, values))}")
    key, how = readings.pop()
    return Reading(key, None, rule if how == "exact" else "number")


def _exact_final(answer: list[str], candidates: Sequence[ClassInfo]) -> str | None:
    forms = candidate_forms(candidates)
    if any(c.key == GOOD for c in candidates):
        forms = {**{phrase(alias): frozenset((GOOD,)) for alias in answer_vocab.GOOD_EXACT}, **forms}
    for form, dropped in trimmed(answer):
        key = _only(forms.get(form, ()))
        if key is not None and set(read_stances(dropped, candidates).by_class) <= {key}:
            return key
    return None


def _read_final(tokens: list[str], candidates: Sequence[ClassInfo]) -> Reading | None:
    """Rule 6: None when no final-answer line decides."""
    for answer in final_answers(tokens):
        if (key := _exact_final(answer, candidates)) is not None:
            return Reading(key, None, "final_answer")
        if (key := _numbered(" ".join(answer), candidates)) is not None:
            return Reading(key, None, "number")
        stances = read_stances(answer, candidates)
        if not stances.by_class and stances.refusal is None:
            continue  # names no class: an earlier final line may
        if len(stances.asserted) == 1:
            return Reading(stances.asserted[0], None, "mention", f"final line: {' '.join(answer)!r}")
        if not stances.asserted and stances.refusal is not None:
            return _refusal(stances)
        return None
    return None


def _refusal(stances: Stances) -> Reading:
    scoped = [k for k, s in stances.by_class.items() if s == "refused"]
    about = f" about {', '.join(scoped)}" if scoped else ""
    return Reading(None, REFUSED, "refusal", f"refusal{about}: {stances.refusal!r}")


def _read_stances(tokens: list[str], candidates: Sequence[ClassInfo]) -> Reading:
    """Rules 7 to 9 over the whole reply."""
    stances = read_stances(tokens, candidates)
    asserted = stances.asserted
    if len(asserted) == 1:
        return Reading(asserted[0], None, "mention")
    if asserted:
        return Reading(None, UNPARSEABLE, "none", f"asserts several classes: {', '.join(asserted)}")
    if stances.refusal is not None:
        return _refusal(stances)
    if not stances.by_class:
        return Reading(None, UNPARSEABLE, "none", "names no candidate class")
    denied = ", ".join(f"{k} ({s})" for k, s in stances.by_class.items())
    return Reading(None, UNPARSEABLE, "none", f"asserts no class: {denied}")


def _lenient(text: str, candidates: Sequence[ClassInfo], structured: bool) -> Reading:
    if structured and (reading := _read_json(text, candidates, "structured")) is not None:
        return reading
    if not text.strip():
        return Reading(None, UNPARSEABLE, "none", "empty reply")
    if (reading := _read_json(text, candidates, "json")) is not None:
        return reading
    if (key := _exact(text, candidates)) is not None:
        return Reading(key, None, "exact")
    if (key := _numbered(text, candidates)) is not None:
        return Reading(key, None, "number")
    tokens = tokenize(text)
    return _read_final(tokens, candidates) or _read_stances(tokens, candidates)


def read_answer(text: str | None, candidates: Sequence[ClassInfo], *, structured: bool = False,
                mode: str = "lenient") -> Reading:
    """How ``text`` answers among ``candidates`` (in the order the prompt listed them).

    ``structured``: the backend constrained the reply to a schema; ``mode``: ``lenient`` or ``strict``.
    """
    strict = check_mode(mode) == "strict"
    reading = _lenient(text or "", list(candidates), structured)
    if strict and reading.rule not in STRICT_RULES and reading.rule != "none":
        what = reading.key if reading.key is not None else reading.error
        return Reading(None, UNPARSEABLE, "none", f"--answers strict: rule {reading.rule} would read {what!r}")
    return reading


def parse_answer(text: str | None, candidates: Sequence[ClassInfo]) -> tuple[str | None, str | None]:
    """The lenient `read_answer` as (class key, None) or (None, ``unparseable`` or ``refused``)."""
    return read_answer(text, candidates).pair


def read_option_scores(scores: dict[str, float], candidates: Sequence[ClassInfo]) -> Reading:
    """The candidate with the highest score, for classifiers that score every option (rule ``option_score``).

    Non-candidate keys and NaN scores are ignored; no usable score, or a tie, is ``unparseable``.
    """
    usable = {
        c.key: float(scores[c.key])
        for c in candidates
        if c.key in scores and scores[c.key] is not None and not math.isnan(float(scores[c.key]))
    }
    if not usable:
        return Reading(None, UNPARSEABLE, "none", "no usable option score")
    best = max(usable.values())
    winners = [k for k, v in usable.items() if v == best]
    if len(winners) != 1:
        return Reading(None, UNPARSEABLE, "none", f"option scores tie: {', '.join(winners)}")
    return Reading(winners[0], None, "option_score")


def parse_option_scores(scores: dict[str, float], candidates: Sequence[ClassInfo]) -> tuple[str | None, str | None]:
    """`read_option_scores` as (class key, error kind)."""
    return read_option_scores(scores, candidates).pair
