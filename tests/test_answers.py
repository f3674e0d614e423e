"""Closed-set answer parsing: each rule, in order, and the tricky overlaps."""

from __future__ import annotations

import math

import pytest

from harness.scoring.answers import (
    RULES, Reading, check_mode, normalize, parse_answer, parse_option_scores, read_answer, read_option_scores,
)
from harness.errors import HarnessError
from harness.types import GOOD_CLASS, ClassInfo

BOTTLE = [
    GOOD_CLASS,
    ClassInfo("broken_large", "broken large", "a large piece of the rim is missing"),
    ClassInfo("broken_small", "broken small", "a small chip on the rim"),
    ClassInfo("contamination", "contamination", "foreign material inside"),
]
SCREW = [
    ClassInfo("scratch", "scratch", "a thin line on the thread"),
    ClassInfo("scratch_head", "scratch head", "a scratch on the screw head"),
    ClassInfo("thread_top", "thread top", ""),
    ClassInfo("manipulated_front", "manipulated front", ""),
]


def ok(key):
    return (key, None)


UNPARSEABLE = (None, "unparseable")
REFUSED = (None, "refused")


def test_normalize():
    assert normalize("  Broken_Large. ") == "broken large"
    assert normalize('"Scratch-Head"') == "scratch head"
    assert normalize("A\tB\n  C!!") == "a b c"


# --- rule 1: empty ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_is_unparseable(text):
    assert parse_answer(text, BOTTLE) == UNPARSEABLE


# --- rule 2: JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key",
    [
        ('{"class": "broken large"}', "broken_large"),
        ('{"label": "Broken_Small"}', "broken_small"),
        ('{"answer": "contamination"}', "contamination"),
        ('{"defect": "good"}', "good"),
        ('{"Class": "broken large", "confidence": 0.9}', "broken_large"),
        ('Here you go:\n```json\n{"class": "broken small"}\n```', "broken_small"),
        ('The reasoning mentions broken large. {"class": "contamination"}', "contamination"),
        ('{"answer": 2}', "broken_large"),
        ('{"class": "option 4"}', "contamination"),
        ('{"reasoning": "rim intact", "details": {"x": 1}} {"class": "good"}', "good"),
    ],
)
def test_json_answer(text, key):
    assert parse_answer(text, BOTTLE) == ok(key)


def test_json_field_wins_over_text_mentions():
    text = 'Maybe broken small, maybe contamination. {"class": "broken large"}'
    assert parse_answer(text, BOTTLE) == ok("broken_large")


@pytest.mark.parametrize(
    "text",
    [
        '{"class": "crack"}',  # not a candidate: the model answered, but off the list
        '{"class": null}',
        '{"class": ""}',
        '{"class": "broken large"} {"class": "broken small"}',  # disagreeing objects
        '{"class": "broken"}',  # ambiguous value
    ],
)
def test_json_answer_off_the_list_is_unparseable(text):
    assert parse_answer(text, BOTTLE) == UNPARSEABLE


def test_json_without_answer_field_falls_through_to_text():
    assert parse_answer('{"confidence": 0.8} broken small', BOTTLE) == ok("broken_small")
    # Not valid JSON (single quotes): the text rules still find the unique mention.
    assert parse_answer("{'class': 'broken small'}", BOTTLE) == ok("broken_small")


# --- rule 3: exact match ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key",
    [
        ("broken large", "broken_large"),
        ("Broken Large", "broken_large"),
        ("broken_large", "broken_large"),
        ("BROKEN-SMALL.", "broken_small"),
        ('"contamination"', "contamination"),
        ("'good'", "good"),
        ("Answer: broken small", "broken_small"),
        ("answer - broken small", "broken_small"),
        ("The answer is: broken small.", "broken_small"),
        ("Class: contamination.", "contamination"),
        ("**Answer:** Good", "good"),
        ("`broken_large`", "broken_large"),
        ("  contamination\n", "contamination"),
    ],
)
def test_exact_match(text, key):
    assert parse_answer(text, BOTTLE) == ok(key)


def test_exact_match_of_key_when_name_differs():
    candidates = [ClassInfo("color", "colour stain", ""), ClassInfo("cut", "cut lead", "")]
    assert parse_answer("color", candidates) == ok("color")
    assert parse_answer("Colour stain", candidates) == ok("color")
    assert parse_answer("cut_lead", candidates) == ok("cut")


# --- rule 4: numbered option -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key",
    [
        ("1", "good"),
        ("2", "broken_large"),
        ("3.", "broken_small"),
        ("(4)", "contamination"),
        ("#2", "broken_large"),
        ("Option 3", "broken_small"),
        ("option 4.", "contamination"),
        ("Answer: 2", "broken_large"),
        ("The answer is 3", "broken_small"),
        ("Final answer: (2)", "broken_large"),
    ],
)
def test_numbered_option(text, key):
    assert parse_answer(text, BOTTLE) == ok(key)


@pytest.mark.parametrize("text", ["0", "5", "99", "option 7"])
def test_number_out_of_range_is_unparseable(text):
    assert parse_answer(text, BOTTLE) == UNPARSEABLE


def test_numbers_follow_candidate_order():
    shuffled = list(reversed(BOTTLE))
    assert parse_answer("1", shuffled) == ok("contamination")
    assert parse_answer("4", shuffled) == ok("good")


# --- rule 5: unique mention ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key",
    [
        ("The bottle shows a broken large defect on the rim.", "broken_large"),
        ("I think it's broken_small because the chip is tiny.", "broken_small"),
        ("Defect class: contamination (foreign material).", "contamination"),
        ("The part looks good to me.", "good"),
        ("The answer is option 3 — broken small.", "broken_small"),
    ],
)
def test_unique_mention(text, key):
    assert parse_answer(text, BOTTLE) == ok(key)


def test_sibling_names_are_distinguished():
    assert parse_answer("It is broken large, clearly.", BOTTLE) == ok("broken_large")
    assert parse_answer("It is broken small, clearly.", BOTTLE) == ok("broken_small")
    assert parse_answer("broken large or broken small", BOTTLE) == UNPARSEABLE
    # "broken" alone names no candidate, and never gets guessed.
    assert parse_answer("It is broken.", BOTTLE) == UNPARSEABLE


def test_longer_name_shadows_the_shorter_inside_it():
    assert parse_answer("I see a scratch head defect.", SCREW) == ok("scratch_head")
    assert parse_answer("This looks like a scratch on the thread.", SCREW) == ok("scratch")
    # The shorter name also occurring on its own is a second mention.
    assert parse_answer("A scratch head, and a scratch elsewhere.", SCREW) == UNPARSEABLE
    assert parse_answer("scratch head", SCREW) == ok("scratch_head")


def test_whole_words_only():
    candidates = [ClassInfo("hole", "hole", ""), ClassInfo("crack", "crack", "")]
    assert parse_answer("The surface is wholesome but has a hole.", candidates) == ok("hole")
    assert parse_answer("crackling sounds", candidates) == UNPARSEABLE


def test_several_mentions_are_unparseable():
    assert parse_answer("Either contamination or broken small.", BOTTLE) == UNPARSEABLE


def test_good_as_a_candidate_counts_like_any_other():
    assert parse_answer("good", BOTTLE) == ok("good")
    # "good" asserted alongside a defect is two assertions: never guessed.
    assert parse_answer("The rim looks good, but there is contamination inside.", BOTTLE) == UNPARSEABLE
    # Denied good and an asserted defect: the defect (was unparseable before negation was read).
    assert parse_answer("Not good: broken large.", BOTTLE) == ok("broken_large")
    # Without good among the candidates the word is plain text.
    assert parse_answer("Not good: broken large.", BOTTLE[1:]) == ok("broken_large")


@pytest.mark.parametrize(
    "text",
    [
        "It is not contamination.",
        "There is no contamination visible.",
        "The bottle is free of contamination.",
        "Contamination is not present.",
        "Not broken large.",
        "No sign of broken small or broken large.",
        "Is it contamination? No.",
    ],
)
def test_a_denied_class_is_never_the_answer(text):
    assert read_answer(text, BOTTLE) == Reading(None, "unparseable", "none", read_answer(text, BOTTLE).detail)
    assert "asserts no class" in read_answer(text, BOTTLE).detail


def test_a_reply_rejecting_one_class_and_asserting_another_reads_the_other():
    assert parse_answer("Not contamination but broken small.", BOTTLE) == ok("broken_small")
    assert parse_answer("It's not contamination; it looks like broken large.", BOTTLE) == ok("broken_large")
    assert parse_answer("This is not a scratch but a scratch head.", SCREW) == ok("scratch_head")


# --- rule 6: refusal or nothing --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that.",
        "I cannot help with identifying this.",
        "I’m sorry, but I can’t determine that.",
        "Sorry, I am unable to classify this image.",
        "As an AI, I do not make inspection decisions.",
    ],
)
def test_refusal(text):
    assert parse_answer(text, BOTTLE) == REFUSED


def test_refusal_naming_a_class_is_the_class():
    # An apology that scopes no mention does not hide the class asserted after it.
    assert parse_answer("I'm sorry, but it looks like contamination.", BOTTLE) == ok("contamination")


@pytest.mark.parametrize(
    "text",
    [
        "I am sorry, I cannot tell whether this is contamination.",
        "I'm unable to say if it is broken large.",
        "I can't determine whether it's broken small or broken large.",
    ],
)
def test_refusal_wins_over_the_mention_it_scopes(text):
    reading = read_answer(text, BOTTLE)
    assert (reading.key, reading.error, reading.rule) == (None, "refused", "refusal")


@pytest.mark.parametrize("text", ["It is a crack.", "???", "The image is blurry.", "{}", "N/A"])
def test_no_candidate_is_unparseable(text):
    assert parse_answer(text, BOTTLE) == UNPARSEABLE


# --- rule names and strict mode --------------------------------------------------------------


@pytest.mark.parametrize(
    "text, structured, key, rule",
    [
        ('{"class": "broken small"}', True, "broken_small", "structured"),
        ('{"class": "broken small"}', False, "broken_small", "json"),
        ('{"answer": 2}', False, "broken_large", "number"),
        ("Broken_Large", False, "broken_large", "exact"),
        ("(4)", False, "contamination", "number"),
        ("The rim is intact.\nFinal answer: contamination", False, "contamination", "final_answer"),
        ("The rim is intact. Therefore, the defect is contamination.", False, "contamination", "final_answer"),
        ("I see dark particles, so probably contamination.", False, "contamination", "mention"),
        ("I can't help with that.", False, None, "refusal"),
        ("The bottle is blurry.", False, None, "none"),
    ],
)
def test_every_reading_names_the_rule_that_decided(text, structured, key, rule):
    reading = read_answer(text, BOTTLE, structured=structured)
    assert (reading.key, reading.rule) == (key, rule)
    assert reading.rule in RULES


def test_a_structured_reply_that_is_not_json_is_read_by_the_text_rules():
    assert read_answer("contamination", BOTTLE, structured=True).rule == "exact"
    assert read_answer('{"class": "crack"}', BOTTLE, structured=True).pair == UNPARSEABLE


@pytest.mark.parametrize(
    "text, structured, key",
    [
        ('{"class": "broken small"}', True, "broken_small"),
        ('{"class": "broken small"}', False, "broken_small"),
        ("Broken_Large", False, "broken_large"),
        ("The rim is intact.\nFinal answer: contamination", False, "contamination"),
    ],
)
def test_strict_mode_keeps_structured_json_exact_and_final_answer_readings(text, structured, key):
    assert read_answer(text, BOTTLE, structured=structured, mode="strict").pair == ok(key)


@pytest.mark.parametrize(
    "text, lenient_rule",
    [
        ("I see dark particles, so probably contamination.", "mention"),
        ("(4)", "number"),
        ('{"answer": 2}', "number"),
        ("I can't help with that.", "refusal"),
    ],
)
def test_strict_mode_reads_everything_else_as_unparseable_and_says_what_lenient_would_read(text, lenient_rule):
    assert read_answer(text, BOTTLE).rule == lenient_rule
    strict = read_answer(text, BOTTLE, mode="strict")
    assert (strict.key, strict.error, strict.rule) == (None, "unparseable", "none")
    assert f"rule {lenient_rule}" in strict.detail


def test_answer_modes_are_checked_with_a_message_naming_the_option():
    assert check_mode("strict") == "strict"
    with pytest.raises(HarnessError, match="--answers 'loose'.*lenient, strict"):
        check_mode("loose")
    with pytest.raises(HarnessError, match="answers"):
        read_answer("good", BOTTLE, mode="loose")


# --- option scores ---------------------------------------------------------------------------


def test_option_scores_argmax():
    scores = {"good": -3.0, "broken_large": -0.5, "broken_small": -1.0, "contamination": -2.0}
    assert parse_option_scores(scores, BOTTLE) == ok("broken_large")
    assert read_option_scores(scores, BOTTLE).rule == "option_score"
    assert read_option_scores({}, BOTTLE).rule == "none"


def test_option_scores_tie_and_empty():
    assert parse_option_scores({"good": 1.0, "broken_large": 1.0}, BOTTLE) == UNPARSEABLE
    assert parse_option_scores({}, BOTTLE) == UNPARSEABLE
    assert parse_option_scores({"good": math.nan}, BOTTLE) == UNPARSEABLE


def test_option_scores_ignore_non_candidates_and_nan():
    scores = {"crack": 10.0, "broken_small": 0.2, "good": math.nan, "contamination": 0.1}
    assert parse_option_scores(scores, BOTTLE) == ok("broken_small")
