"""Final-answer lines: where a reply that reasons first states its answer.

A *marker* opens a segment at the start of a sentence or after a separator
(``, ; : -`` ...) or contrast word, in one of three forms (`harness.scoring.answer_vocab`):

- a label and its link: "Final answer: X", "**Answer:** X", "The defect is X",
  "Antwort: X", "答案：X"; a label alone on its line ("## Final Answer")
  takes the next sentence as its answer;
- a stated choice: "I'd go with X", "The best match is X";
- a connector, optionally with a subject and verb: "Therefore, X",
  "Thus the bottle shows X", "In conclusion, it is X".

The segment's *answer* runs from the marker to the end of its sentence.
`final_answers` yields the answers of all marked segments, last first;
`harness.scoring.answers` reads them (exactly, as a number, or by their stances).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator, Sequence

from harness.scoring import answer_vocab as vocab
from harness.scoring.answer_tokens import ENDS as _ENDS, SEPARATORS, phrase

#: Separators after which a marker may open a segment.
_OPENERS = SEPARATORS - {")"}
_ARTICLES = frozenset(("a", "an", "the"))
_TRAILING_NOUNS = frozenset(("defect", "class", "type", "category", "anomaly"))


@lru_cache(maxsize=1)
def _tables() -> dict[str, set[tuple[str, ...]]]:
    names = ("CONNECTORS", "ANSWER_LABELS", "LABEL_LINKS", "CHOICES", "COPULAS", "CONTRASTS")
    return {name: {phrase(text) for text in getattr(vocab, name)} for name in names}


def _match(tokens: Sequence[str], at: int, table: str) -> int:
    """Length of the longest phrase of ``table`` at ``at`` (0 when none)."""
    phrases = _tables()[table]
    for n in range(min(6, len(tokens) - at), 0, -1):
        if tuple(tokens[at:at + n]) in phrases:
            return n
    return 0


def _is_word(token: str) -> bool:
    return token not in _ENDS and token not in _OPENERS


def _answer_start(tokens: Sequence[str], at: int) -> int | None:
    """Where the answer begins when a marker opens the segment at ``at``; None when none does."""
    connector = _match(tokens, at, "CONNECTORS")
    i = at + connector
    if connector and i < len(tokens) and tokens[i] in (",", ":"):
        i += 1
    label = _match(tokens, i, "ANSWER_LABELS")
    if label:
        link = _match(tokens, i + label, "LABEL_LINKS")
        if link:
            return i + label + link
        if i + label == len(tokens) or tokens[i + label] in _ENDS:
            return i + label  # a label alone: the answer is the next sentence
    choice = _match(tokens, i, "CHOICES")
    if choice:
        j = i + choice
        return j + 1 if j < len(tokens) and tokens[j] in (":", "that") else j
    if not connector:
        return None
    for k in range(i, min(i + 4, len(tokens))):
        if not _is_word(tokens[k]):
            break
        copula = _match(tokens, k, "COPULAS")
        if copula:
            return k + copula
    return i


def _segment_starts(tokens: Sequence[str]) -> list[int]:
    starts = [0]
    for i, token in enumerate(tokens):
        if token in _ENDS or token in _OPENERS:
            starts.append(i + 1)
        elif _match(tokens, i, "CONTRASTS"):
            starts.append(i + _match(tokens, i, "CONTRASTS"))
    return sorted(set(s for s in starts if s < len(tokens)))


def _sentence_from(tokens: Sequence[str], at: int) -> list[str]:
    end = at
    while end < len(tokens) and tokens[end] not in _ENDS:
        end += 1
    return list(tokens[at:end])


def final_answers(tokens: Sequence[str]) -> Iterator[list[str]]:
    """The answer tokens of every marked segment, the last segment first (see the module docstring)."""
    found = []
    for start in _segment_starts(tokens):
        begin = _answer_start(tokens, start)
        if begin is None:
            continue
        answer = _sentence_from(tokens, begin)
        if not answer:  # "## Final answer" / "Answer:" then the answer on the next line
            after = begin
            while after < len(tokens) and tokens[after] in _ENDS | {":"}:
                after += 1
            answer = _sentence_from(tokens, after)
        if answer:
            found.append(answer)
    return reversed(found)


def trimmed(answer: Sequence[str]) -> list[tuple[tuple[str, ...], list[str]]]:
    """(form, dropped tail) pairs an answer may be compared with exactly: as written without leading
    articles; without a trailing "defect" / "class" noun; without a trailing parenthesis (the caller
    checks that the dropped parenthesis names no other class)."""
    words = list(answer)
    while words and (words[0] in _ARTICLES or words[0] in _OPENERS):
        words = words[1:]
    forms = [(tuple(words), [])]
    if len(words) > 1 and words[-1] in _TRAILING_NOUNS:
        forms.append((tuple(words[:-1]), []))
    if words[-1:] == [")"] and "(" in words:
        cut = words.index("(")
        forms.append((tuple(words[:cut]), words[cut:]))
    return forms
