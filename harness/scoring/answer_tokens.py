"""Replies and phrases as tokens, and the phrases a reply's tokens are matched against.

`tokenize`: case-folded words, contractions expanded ("can't" -> "cannot",
"isn't" -> "is not", "I'm" -> "i am"), each Chinese, Japanese or Korean
character a token, punctuation kept where it separates (``, ; : ( ) | = - — →``)
or ends a sentence (``. ! ?`` and line ends), markdown and quotes dropped,
check marks turned into "yes" and "no".

`items_of`: at each token the longest phrase that is a *mention* (a candidate's
name or key, or its plural; with ``good`` among the candidates also "no
defect", "defect-free", "looks normal" and kin), a cue of `harness.scoring.answer_vocab`
(negation, refusal, question, neutral), a contrast word, a separator, a
sentence end or a plain word. "scratch head" is one mention, never also
"scratch"; a mention wins over a cue of the same length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

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


# --------------------------------------------------------------------------- clauses
