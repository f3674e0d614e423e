"""Replies as tokens, the phrases matched against them, and the final-answer lines.

`tokenize`: case-folded words, contractions expanded, each CJK character a token, separators
(``, ; : ( ) | = - — →``) and sentence ends kept, check marks turned into "yes" and "no".
`items_of`: at each token the longest known phrase: a mention of a candidate (name, key, plural,
and good's phrases), a cue of `harness.scoring.answer_vocab`, a contrast, a separator, an end or a
plain word; a mention wins over a cue of the same length. `final_answers`: where a reply that
reasons first states its answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Sequence

from harness.scoring import answer_vocab as vocab
from harness.types import GOOD, ClassInfo

SEPARATORS = frozenset((",", ";", ":", "(", ")", "|", "=", "-", "—", "–", "→", "->", "=>"))
ENDS = frozenset((".", "!", "?", "\n"))

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN_RE = re.compile(
    rf"[{_CJK}]|[^\W_{_CJK}]+(?:'[^\W_{_CJK}]+)*|->|=>|\n|[,;:()|=.!?—–→]|(?<!\S)-(?!\S)"
)
_CHARACTERS = str.maketrans({
    "。": ".", "．": ".", "！": "!", "？": "?", "，": ",", "、": ",", "；": ";", "：": ":", "（": "(", "）": ")",
    "’": "'", "‘": "'", "´": "'", "✓": " yes ", "✔": " yes ", "✅": " yes ", "☑": " yes ",
    "✗": " no ", "✘": " no ", "❌": " no ",
})
_CONTRACTIONS = (
    (re.compile(r"\bcan't\b|\bcan not\b"), "cannot"),
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"\bshan't\b"), "shall not"),
    (re.compile(r"\b(\w+)n't\b"), r"\1 not"),
    (re.compile(r"\b(\w+)'(m|re|s|d|ll|ve)\b"), lambda m: f"{m[1]} " + {
        "m": "am", "re": "are", "s": "is", "d": "would", "ll": "will", "ve": "have"}[m[2]]),
)


def tokenize(text: str) -> list[str]:
    """The reply as tokens (see the module docstring)."""
    text = text.casefold().translate(_CHARACTERS)
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return _TOKEN_RE.findall(text)


def phrase(text: str) -> tuple[str, ...]:
    """A phrase as the token tuple `tokenize` makes of it."""
    return tuple(tokenize(text))


@dataclass(frozen=True)
class Item:
    """One matched phrase: a ``mention`` (of ``keys``), a ``cue``, a ``contrast``, a ``separator``, an ``end`` or a ``word``."""

    kind: str
    text: str
    keys: frozenset[str] = frozenset()
    cue: str = ""  # neg, refuse, question, neutral
    reach: str = ""  # pre, post, both, sentence
    closes: bool = False  # a cue that also ends its clause (Japanese ではなく)
    opens: bool = False  # a cue that also starts a clause (a concession)


def candidate_forms(candidates: Sequence[ClassInfo]) -> dict[tuple[str, ...], frozenset[str]]:
    """Token form of each candidate's name and key -> the keys it may denote."""
    forms: dict[tuple[str, ...], set[str]] = {}
    for c in candidates:
        for form in {phrase(c.name), phrase(c.key)}:
            if form:
                forms.setdefault(form, set()).add(c.key)
    return {form: frozenset(keys) for form, keys in forms.items()}


def good_forms() -> list[tuple[str, ...]]:
    """The phrases that assert ``good`` when it is a candidate (`answer_vocab.GOOD_PHRASES`, "looks normal", ...)."""
    forms = [phrase(p) for p in vocab.GOOD_PHRASES]
    for verb in vocab.GOOD_NORMAL_VERBS:
        for adverb in vocab.GOOD_NORMAL_ADVERBS:
            forms.append(phrase(f"{verb} {adverb} normal"))
    return forms


@lru_cache(maxsize=1)
def _cue_table() -> dict[tuple[str, ...], Item]:
    table: dict[tuple[str, ...], Item] = {}
    for kind, entries in (("question", vocab.QUESTIONS), ("neg", vocab.NEGATIONS), ("refuse", vocab.REFUSALS)):
        for text, reach in entries.items():
            table[phrase(text)] = Item("cue", text, cue=kind, reach=reach)
    for text in vocab.NEUTRALS:
        table[phrase(text)] = Item("cue", text, cue="neutral", reach="pre")
    for text in vocab.CONCESSIONS:
        table[phrase(text)] = Item("cue", text, cue="question", reach="pre", opens=True)
    for text in vocab.LISTINGS:
        table[phrase(text)] = Item("cue", text, cue="question", reach="sentence")
    for text in vocab.NEG_THEN_BOUNDARY:
        table[phrase(text)] = Item("cue", text, cue="neg", reach="post", closes=True)
    for text in vocab.CONTRASTS:
        table[phrase(text)] = Item("contrast", text)
    return table


@lru_cache(maxsize=256)
def _mention_table(candidates: tuple[ClassInfo, ...]) -> dict[tuple[str, ...], Item]:
    forms = candidate_forms(candidates)
    table = {form: Item("mention", " ".join(form), keys=keys) for form, keys in forms.items()}
    for form, keys in forms.items():  # plurals: "no cracks", "two scratches"
        for ending in ("s", "es"):
            plural = form[:-1] + (form[-1] + ending,)
            table.setdefault(plural, Item("mention", " ".join(plural), keys=keys))
    if any(c.key == GOOD for c in candidates):
        for form in good_forms():
            table.setdefault(form, Item("mention", " ".join(form), keys=frozenset((GOOD,))))
    return table


def items_of(tokens: Sequence[str], candidates: Sequence[ClassInfo]) -> list[Item]:
    """The longest known phrase at each place (see the module docstring)."""
    mentions, cues = _mention_table(tuple(candidates)), _cue_table()
    longest = max(map(len, [*mentions, *cues]))
    items, i = [], 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 0, -1):
            key = tuple(tokens[i:i + n])
            found = mentions.get(key) or cues.get(key)
            if found is not None:
                items.append(found)
                i += n
                break
        else:
            token = tokens[i]
            kind = "end" if token in ENDS else "separator" if token in SEPARATORS else "word"
            items.append(Item(kind, token))
            i += 1
    return items


# --------------------------------------------------------------------------- final-answer lines
# A marker opens a segment at a sentence start or after a separator or contrast word: a label and its
# link ("Final answer: X", "The defect is X"; a label alone on its line takes the next sentence), a
# stated choice ("I'd go with X") or a connector with an optional subject and verb ("Therefore, X",
# "Thus the bottle shows X"). The segment's answer runs to the end of its sentence.

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
    return token not in ENDS and token not in _OPENERS


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
        if i + label == len(tokens) or tokens[i + label] in ENDS:
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
        if token in ENDS or token in _OPENERS:
            starts.append(i + 1)
        elif _match(tokens, i, "CONTRASTS"):
            starts.append(i + _match(tokens, i, "CONTRASTS"))
    return sorted(set(s for s in starts if s < len(tokens)))


def _sentence_from(tokens: Sequence[str], at: int) -> list[str]:
    end = at
    while end < len(tokens) and tokens[end] not in ENDS:
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
            while after < len(tokens) and tokens[after] in ENDS | {":"}:
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
