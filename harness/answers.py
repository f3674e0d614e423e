"""Closed-set answer parsing: from a model's reply to one candidate class, or an error kind.

`parse_answer` tries these rules in order and stops at the first that decides:

1. empty (or only whitespace) -> ``unparseable``;
2. a JSON object anywhere in the text (also inside a fenced code block) with a
   ``class``, ``label``, ``answer`` or ``defect`` field (or ``class_name``,
   ``defect_class``, ``defect_type``) -> that value, matched by rules 3 and 4
   only; a value that matches nothing, or objects that disagree, are
   ``unparseable`` (the model did answer, with something not on the list);
3. the whole answer equals a candidate's display name or key after
   normalisation (see `normalize`; a leading ``Answer:``, ``Class:`` or
   ``The answer is`` prefix, markdown emphasis and quotes are removed);
4. a bare number, ``#3``, ``(3)``, ``3.`` or ``option 3`` -> the third
   candidate (1-based, in the order the prompt listed them);
5. exactly one candidate is mentioned as a whole-word phrase. When one
   candidate's name lies inside another's ("scratch" in "scratch head"), a
   mention of the longer one does not also count as a mention of the shorter;
   two different candidates mentioned -> ``unparseable``;
6. no candidate mentioned: a refusal phrase ("I can't", "I'm sorry", "unable
   to", "as an AI", ...) -> ``refused``, otherwise ``unparseable``.

The parser never guesses. In particular negation is not understood: "not a
scratch" is a mention of scratch, and "not a scratch but a crack" mentions
two candidates and is unparseable. Prompts ask for the class name alone, so a
reply that needs reading between the lines is counted as the model's failure
to follow the format, not silently interpreted.
"""

from __future__ import annotations

import json
import math
import re
from typing import Iterable

from harness.types import ClassInfo

UNPARSEABLE = "unparseable"
REFUSED = "refused"

#: JSON fields that hold the answer, in order of preference.
ANSWER_FIELDS = ("class", "label", "answer", "defect", "class_name", "defect_class", "defect_type")

#: Phrases (normalised) that mark a refusal when no candidate is named.
REFUSAL_PHRASES = (
    "i can t",
    "i cannot",
    "i can not",
    "cannot help",
    "can t help",
    "i m sorry",
    "i am sorry",
    "sorry but",
    "unable to",
    "not able to",
    "as an ai",
    "i won t",
    "i will not",
    "i must decline",
)

_PREFIX_RE = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+)?(?:answer|class|label|prediction|defect(?:\s+(?:class|type))?)"
    r"(?:\s*[:=\-]|\s+is\s*:?)\s*",
    re.IGNORECASE,
)
_MARKDOWN_RE = re.compile(r"[*`]+")
_NUMBER_RE = re.compile(r"^(?:option|choice|number|no|class|candidate)?\s*(\d{1,3})$")
_RAW_NUMBER_RE = re.compile(r"^\s*(?:#|\(|\[)?\s*(\d{1,3})\s*(?:\)|\]|\.)?\s*$")


def normalize(text: str) -> str:
    """Case-fold; underscores, dashes and punctuation to spaces; whitespace collapsed."""
    text = text.casefold()
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(text.split())


def _clean(text: str) -> str:
    """The answer without markdown emphasis and a leading ``Answer:``-style prefix."""
    text = _MARKDOWN_RE.sub("", text).strip()
    return _PREFIX_RE.sub("", text, count=1)


def _forms(candidates: list[ClassInfo]) -> dict[str, set[str]]:
    """Normalised name or key -> the candidate keys it may denote."""
    forms: dict[str, set[str]] = {}
    for c in candidates:
        for form in {normalize(c.name), normalize(c.key)}:
            if form:
                forms.setdefault(form, set()).add(c.key)
    return forms


def _exact(text: str, candidates: list[ClassInfo]) -> str | None:
    keys = _forms(candidates).get(normalize(_clean(text)), set())
    return next(iter(keys)) if len(keys) == 1 else None


def _numbered(text: str, candidates: list[ClassInfo]) -> str | None:
    cleaned = _clean(text)
    match = _RAW_NUMBER_RE.match(cleaned) or _NUMBER_RE.match(normalize(cleaned))
    if not match:
        return None
    index = int(match.group(1))
    if 1 <= index <= len(candidates):
        return candidates[index - 1].key
    return None


def _mentions(text: str, candidates: list[ClassInfo]) -> set[str]:
    """Keys of the candidates mentioned in ``text``, longer phrases shadowing those inside them."""
    norm = normalize(text)
    spans: list[tuple[int, int, frozenset[str]]] = []
    for form, keys in _forms(candidates).items():
        for match in re.finditer(rf"(?<!\S){re.escape(form)}(?!\S)", norm):
            spans.append((match.start(), match.end(), frozenset(keys)))
    # Drop a span that lies strictly inside another (shorter name within a longer one).
    kept = [
        s for s in spans
        if not any(o[0] <= s[0] and s[1] <= o[1] and (o[1] - o[0]) > (s[1] - s[0]) for o in spans)
    ]
    return {key for _, _, keys in kept for key in keys}


def _is_refusal(text: str) -> bool:
    norm = normalize(text)
    return any(re.search(rf"(?<!\S){re.escape(p)}(?!\S)", norm) for p in REFUSAL_PHRASES)


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


def _match_value(value: object, candidates: list[ClassInfo]) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    return _exact(value, candidates) or _numbered(value, candidates)


def parse_answer(text: str, candidates: list[ClassInfo]) -> tuple[str | None, str | None]:
    """(class key, None) for an answer naming one candidate, else (None, ``unparseable`` or ``refused``).

    See the module docstring for the rules and their order.
    """
    if text is None or not text.strip():
        return None, UNPARSEABLE

    answers = _json_answers(text)
    if answers:
        keys = {_match_value(v, candidates) for v in answers}
        if len(keys) == 1 and None not in keys:
            return keys.pop(), None
        return None, UNPARSEABLE

    key = _exact(text, candidates) or _numbered(text, candidates)
    if key is not None:
        return key, None

    mentioned = _mentions(text, candidates)
    if len(mentioned) == 1:
        return mentioned.pop(), None
    if mentioned:
        return None, UNPARSEABLE
    return (None, REFUSED) if _is_refusal(text) else (None, UNPARSEABLE)


def parse_option_scores(scores: dict[str, float], candidates: list[ClassInfo]) -> tuple[str | None, str | None]:
    """The candidate with the highest score, for classifiers that score every option.

    Scores for keys that are not candidates and NaN scores are ignored; no
    usable score, or a tie for the highest, is ``unparseable``.
    """
    usable = {
        c.key: float(scores[c.key])
        for c in candidates
        if c.key in scores and scores[c.key] is not None and not math.isnan(float(scores[c.key]))
    }
    if not usable:
        return None, UNPARSEABLE
    best = max(usable.values())
    winners = [k for k, v in usable.items() if v == best]
    if len(winners) != 1:
        return None, UNPARSEABLE
    return winners[0], None
