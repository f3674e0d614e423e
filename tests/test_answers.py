"""Closed-set answer parsing: each rule, in order, and the tricky overlaps."""

from __future__ import annotations

import math

import pytest

from harness.answers import normalize, parse_answer, parse_option_scores
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
    # "good" mentioned alongside a defect is two mentions: never guessed.
    assert parse_answer("Not good: broken large.", BOTTLE) == UNPARSEABLE
    # Without good among the candidates the word is plain text.
    assert parse_answer("Not good: broken large.", BOTTLE[1:]) == ok("broken_large")


def test_negation_is_not_special_cased():
    """Documented limitation: a negated mention is still a mention."""
    assert parse_answer("It is not contamination.", BOTTLE) == ok("contamination")
    assert parse_answer("Not contamination but broken small.", BOTTLE) == UNPARSEABLE


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
    # Rules run in order: a unique mention decides before the refusal check.
    assert parse_answer("I'm sorry, but it looks like contamination.", BOTTLE) == ok("contamination")


@pytest.mark.parametrize("text", ["It is a crack.", "???", "The image is blurry.", "{}", "N/A"])
def test_no_candidate_is_unparseable(text):
    assert parse_answer(text, BOTTLE) == UNPARSEABLE


# --- option scores ---------------------------------------------------------------------------


def test_option_scores_argmax():
    scores = {"good": -3.0, "broken_large": -0.5, "broken_small": -1.0, "contamination": -2.0}
    assert parse_option_scores(scores, BOTTLE) == ok("broken_large")


def test_option_scores_tie_and_empty():
    assert parse_option_scores({"good": 1.0, "broken_large": 1.0}, BOTTLE) == UNPARSEABLE
    assert parse_option_scores({}, BOTTLE) == UNPARSEABLE
    assert parse_option_scores({"good": math.nan}, BOTTLE) == UNPARSEABLE


def test_option_scores_ignore_non_candidates_and_nan():
    scores = {"crack": 10.0, "broken_small": 0.2, "good": math.nan, "contamination": 0.1}
    assert parse_option_scores(scores, BOTTLE) == ok("broken_small")
