"""The answer corpus: replies in the styles real models write, each with the reading it must get.

tests/data/answer_corpus.jsonl holds one reply per line: ``reply``, ``candidates`` (a set of
tests/data/answer_candidate_sets.json), ``expect`` (a class key or ``error:<kind>``), ``rule`` (the
`harness.scoring.answers.RULES` name that must decide), ``style`` (what kind of reply it is) and, for replies
of a schema-constrained backend, ``structured: true``. Every entry is parsed and all mismatches are
reported at once, so a change to the parser shows its whole effect.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from harness.scoring.answers import RULES, STRICT_RULES, read_answer
from harness.types import ClassInfo

DATA = Path(__file__).parent / "data"
STYLES_REQUIRED = {
    "terse", "markdown", "reasoning_final", "json_fenced", "json_prose", "discussed_chosen", "negation", "hedge",
    "refusal", "lang_de", "lang_fr", "lang_es", "lang_zh", "lang_ja", "numbered", "nested", "good_phrasing",
}


def candidate_sets() -> dict[str, list[ClassInfo]]:
    raw = json.loads((DATA / "answer_candidate_sets.json").read_text(encoding="utf-8"))
    return {name: [ClassInfo(key, label) for key, label in classes] for name, classes in raw.items() if name[0] != "_"}


def corpus() -> list[dict]:
    lines = (DATA / "answer_corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def reading_of(entry: dict, sets: dict[str, list[ClassInfo]], mode: str = "lenient") -> tuple[str, str]:
    reading = read_answer(entry["reply"], sets[entry["candidates"]], structured=entry.get("structured", False), mode=mode)
    got = reading.key if reading.error is None else f"error:{reading.error}"
    return got, reading.rule


def test_corpus_is_large_varied_and_well_formed():
    entries, sets = corpus(), candidate_sets()
    assert len(entries) >= 200
    assert STYLES_REQUIRED <= {e["style"] for e in entries}
    assert len({(e["reply"], e["candidates"], e.get("structured", False)) for e in entries}) == len(entries), "duplicates"
    for e in entries:
        keys = {c.key for c in sets[e["candidates"]]}
        assert e["rule"] in RULES, e
        assert e["expect"] in keys or e["expect"] in ("error:unparseable", "error:refused"), e
        # An error is decided by `none` (unparseable) or `refusal` (refused), a class by any other rule.
        assert (e["expect"] == "error:unparseable") == (e["rule"] == "none"), e
        assert (e["expect"] == "error:refused") == (e["rule"] == "refusal"), e


def test_every_corpus_reply_is_read_as_expected():
    sets = candidate_sets()
    mismatches = []
    for number, entry in enumerate(corpus(), start=1):
        got = reading_of(entry, sets)
        if got != (entry["expect"], entry["rule"]):
            mismatches.append(f"line {number} [{entry['style']}] {entry['reply']!r}: expected "
                              f"{entry['expect']} by {entry['rule']}, got {got[0]} by {got[1]}")
    assert not mismatches, f"{len(mismatches)} corpus replies misread:\n" + "\n".join(mismatches)


def test_strict_mode_keeps_only_uninterpreted_readings_of_the_corpus():
    sets = candidate_sets()
    mismatches = []
    for entry in corpus():
        expected = (entry["expect"], entry["rule"]) if entry["rule"] in STRICT_RULES else ("error:unparseable", "none")
        got = reading_of(entry, sets, mode="strict")
        if got != expected:
            mismatches.append(f"{entry['reply']!r}: expected {expected}, got {got}")
    assert not mismatches, "\n".join(mismatches)


def test_no_negated_or_refused_reply_in_the_corpus_reads_as_a_class_it_denies():
    """The issue's failure: a denied class read as the answer. Every negation/refusal entry is checked by name."""
    sets = candidate_sets()
    checked = 0
    for entry in corpus():
        if entry["style"] not in ("negation", "refusal") or entry["expect"].startswith("error:"):
            continue
        got, _ = reading_of(entry, sets)
        assert got == entry["expect"], entry
        checked += 1
    assert checked >= 30


@pytest.mark.parametrize("rule", [r for r in RULES if r != "option_score"])
def test_the_corpus_exercises_every_text_rule(rule):
    assert Counter(e["rule"] for e in corpus())[rule] >= 3
