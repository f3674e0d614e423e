"""Which candidate classes a reply *asserts*: every mention read in the scope of the cues around it.

`read_stances` (the mention rule of `harness.scoring.answers`) works on the items of
`harness.scoring.answer_tokens.items_of` in three steps:

1. clauses: sentences split at separators, contrast words and concessions; a comma list of mentions
   closed by a conjunction ("no scratch, crack, or hole") stays one clause;
2. the stance of each mention, the strongest that applies (refused > negated > questioned >
   asserted): a cue before it in its clause that looks forward; a cue after it that looks back (at
   most `POST_REACH` words, no conjunction between); a sentence ending in "?"; a restated option
   list before it. A verdict clause ("Scratch: no", "Is it a scratch? No.", "Absent: crack, hole")
   overrides the clause it answers;
3. the stance of each class: that of its last mention that is not a question (a model that corrects
   itself is read by its correction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from harness.scoring import answer_vocab as vocab
from harness.scoring.answer_tokens import Item, items_of, tokenize
from harness.types import ClassInfo

#: Most words a looking-back cue may stand after its mention ("contamination can clearly be ruled out").
POST_REACH = 4
#: Stances, weakest first; the strongest cue that scopes a mention decides.
ASSERTED, QUESTIONED, NEGATED, REFUSED = "asserted", "questioned", "negated", "refused"
_STRENGTH = {ASSERTED: 0, QUESTIONED: 1, NEGATED: 2, REFUSED: 3}
_CUE_STANCE = {"neg": NEGATED, "refuse": REFUSED, "question": QUESTIONED}
#: Separators after which a verdict clause answers the clause before it.
_VERDICT_OPENERS = frozenset((":", "-", "—", "–", "|", "(", "=", "→", "->", "=>"))


@dataclass
class _Clause:
    opened_by: str  # the separator before it; "" at the start of a sentence
    items: list[Item]
    stances: dict[int, str]  # index of a mention item -> its stance


@dataclass(frozen=True)
class Stances:
    """What a reply says about the candidates (see `read_stances`)."""

    by_class: dict[str, str]  # class key -> stance, in the order the classes were first mentioned
    refusal: str | None  # the first refusal phrase in the reply, if any

    @property
    def asserted(self) -> list[str]:
        return [key for key, stance in self.by_class.items() if stance == ASSERTED]


def _sentences(items: Iterable[Item]) -> list[tuple[list[_Clause], bool]]:
    """Step 1: (clauses, ends with "?") per sentence."""
    sentences: list[tuple[list[_Clause], bool]] = []
    clauses, current = [], _Clause("", [], {})
    for item in items:
        if item.kind == "end":
            clauses.append(current)
            sentences.append((_merge_lists(clauses), item.text == "?"))
            clauses, current = [], _Clause("", [], {})
        elif item.kind in ("separator", "contrast"):
            clauses.append(current)
            current = _Clause(item.text, [], {})
        else:
            if item.opens and current.items:
                clauses.append(current)
                current = _Clause(item.text, [], {})
            current.items.append(item)
            if item.closes:
                clauses.append(current)
                current = _Clause(item.text, [], {})
    clauses.append(current)
    sentences.append((_merge_lists(clauses), False))
    return [(cs, question) for cs, question in sentences if any(c.items for c in cs)]


def _is_list_part(clause: _Clause) -> bool:
    """Only mentions and list glue ("crack", "or hole")."""
    return any(i.kind == "mention" for i in clause.items) and all(
        i.kind == "mention" or i.text in vocab.GLUE for i in clause.items
    )


def _merge_lists(clauses: list[_Clause]) -> list[_Clause]:
    """Join "no scratch" + ", crack" + ", or hole" into one clause when the list ends with a conjunction."""
    merged = [clauses[0]]
    i = 1
    while i < len(clauses):
        j = i
        while j < len(clauses) and clauses[j].opened_by == "," and _is_list_part(clauses[j]):
            j += 1
        run = clauses[i:j]
        head = merged[-1]
        if run and any(m.kind == "mention" for m in head.items) and any(
            item.text in vocab.CONJUNCTIONS for item in run[-1].items
        ):
            for part in run:
                head.items.extend(part.items)
            i = j
        else:
            merged.append(clauses[i])
            i += 1
    return merged


def _post_targets(items: list[Item], cue_at: int) -> list[int]:
    """The mentions a looking-back cue at ``cue_at`` reaches: the nearest one and the list it ends."""
    j, words = cue_at - 1, 0
    while j >= 0 and items[j].kind != "mention":
        if items[j].kind != "word" or items[j].text in vocab.CONJUNCTIONS or words == POST_REACH:
            return []
        words += 1
        j -= 1
    targets = []
    while j >= 0 and (items[j].kind == "mention" or items[j].text in vocab.GLUE):
        if items[j].kind == "mention":
            targets.append(j)
        j -= 1
    return targets


def _clause_stances(clause: _Clause, question: bool) -> None:
    items = clause.items
    mentions = [k for k, item in enumerate(items) if item.kind == "mention"]
    found = {k: QUESTIONED if question else ASSERTED for k in mentions}

    def apply(k: int, cue: Item) -> None:
        stance = _CUE_STANCE.get(cue.cue)
        if stance is not None and _STRENGTH[stance] > _STRENGTH[found[k]]:
            found[k] = stance

    for j, item in enumerate(items):
        if item.kind != "cue":
            continue
        later = [k for k in mentions if k > j]
        if item.reach in ("pre", "both"):
            for k in later:
                apply(k, item)
        if item.reach == "post" or (item.reach == "both" and not later):
            for k in _post_targets(items, j):
                apply(k, item)
    clause.stances = found


def _verdict(clause: _Clause) -> tuple[str | None, bool]:
    """(ASSERTED or NEGATED, whether the clause is nothing but the verdict word) when the clause names no
    class and opens with a verdict ("yes", "no", "not seen"); (None, False) otherwise."""
    items = [i for i in clause.items if i.text not in vocab.GLUE]
    if not items or any(i.kind == "mention" for i in items):
        return None, False
    first, alone = items[0], len(items) == 1
    if first.text in vocab.VERDICT_YES:
        return ASSERTED, alone
    if first.text in vocab.VERDICT_NO or first.cue == "neg":
        return NEGATED, alone and first.text in vocab.VERDICT_NO
    return None, False


def _apply_listings(sentences: list[tuple[list[_Clause], bool]]) -> None:
    """Mentions after "The options are ..." in the same sentence are listed, not claimed."""
    for clauses, _ in sentences:
        listing = False
        for clause in clauses:
            for k, item in enumerate(clause.items):
                if item.kind == "cue" and item.reach == "sentence":
                    listing = True
                elif listing and clause.stances.get(k) == ASSERTED:
                    clause.stances[k] = QUESTIONED


def _apply_verdicts(sentences: list[tuple[list[_Clause], bool]]) -> None:
    previous_question: list[_Clause] = []
    for clauses, question in sentences:
        for c, clause in enumerate(clauses):
            verdict, bare = _verdict(clause)
            if verdict is None:
                continue
            if c > 0 and clause.opened_by in _VERDICT_OPENERS and clauses[c - 1].stances:
                answered = [clauses[c - 1]]  # "Scratch: no"
            elif c == 0 and previous_question:
                answered = previous_question  # "Is it a scratch? No."
            elif bare and c + 1 < len(clauses) and clauses[c + 1].opened_by == ":":
                answered = clauses[c + 1:]  # "Absent: crack, hole."
            else:
                answered = []
            for target in answered:
                target.stances = dict.fromkeys(target.stances, verdict)
        previous_question = clauses if question else []


def read_stances(text_or_tokens: str | Sequence[str], candidates: Sequence[ClassInfo]) -> Stances:
    """Each mentioned class's stance and the first refusal phrase (see the module docstring)."""
    tokens = tokenize(text_or_tokens) if isinstance(text_or_tokens, str) else list(text_or_tokens)
    items = items_of(tokens, candidates)
    sentences = _sentences(items)
    for clauses, question in sentences:
        for clause in clauses:
            _clause_stances(clause, question)
    _apply_listings(sentences)
    _apply_verdicts(sentences)
    by_class: dict[str, str] = {}
    for clauses, _ in sentences:
        for clause in clauses:
            for k, stance in sorted(clause.stances.items()):
                for key in sorted(clause.items[k].keys):
                    if stance != QUESTIONED or key not in by_class:
                        by_class[key] = stance
    refusal = next((i.text for i in items if i.kind == "cue" and i.cue == "refuse"), None)
    return Stances(by_class, refusal)
