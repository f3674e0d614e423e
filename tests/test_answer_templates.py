"""Answer reading across class names: denials never read as the class they deny, assertions always do.

Each template is filled with every class name of a set that mixes MVTec-AD, VisA and demo names
(one word, two words, names inside other names), so a cue that only works for one name shows up.
All failures are reported at once.
"""

from __future__ import annotations

import pytest

from harness.scoring.answers import read_answer
from harness.types import GOOD_CLASS, ClassInfo

NAMES = (
    "broken large", "broken small", "contamination", "crack", "scratch", "scratch head", "thread top", "hole",
    "color", "cut", "poke insulation", "missing cable", "faulty imprint", "glue strip", "metal contamination",
    "print", "squeeze", "fabric border", "bent lead", "misplaced", "liquid", "rough", "split teeth", "gray stroke",
    "oil", "fold", "manipulated front", "pill type", "combined", "stain",
)
CANDIDATES = [GOOD_CLASS] + [ClassInfo(name.replace(" ", "_"), name) for name in NAMES]

DENIALS = (
    "There is no {c}.", "No {c} visible.", "{C} is not present.", "I don't see any {c}.", "The part is free of {c}.",
    "{C}: no", "Is it {c}? No.", "I cannot tell whether it is {c}.", "Not {c}.", "{C}? Definitely not.",
    "Without {c}.", "{C} is absent.", "There are no signs of {c}.", "It's not a {c}.", "It can't be {c}.",
    "{C} has been ruled out.", "I wouldn't call it {c}.", "Hardly {c}.", "I doubt it is {c}.",
    "Nothing suggests {c}.", "It is definitely not {c}.", "I'm not sure if it's {c}.",
    "Unable to determine whether there is {c}.", "{C} - not detected", "| {c} | ✗ |", "{C} was not found.",
    "No evidence of {c}.", "I do not think this is {c}.", "This does not look like {c}.", "{C} isn't visible here.",
    "Is there any {c}? None.", "Sorry, I can't say whether it's {c}.", "{C}: absent", "Neither {c} nor anything else.",
    "{C} can be excluded.", "There is no sign of {c} at all.", "Not {c}!", "It is not {c}, I think.",
    "Definitely no {c}.", "The image shows no {c}.", "{C} does not apply.", "I would not say {c}.", "{c}-free",
    "It's unlikely to be {c}.", "{C} is unlikely.", "Absent: {c}.", "I see no {c}.", "Zero {c}.",
    "The {c} hypothesis is rejected.", "I reject {c}.", "Not really {c}.", "{C}? Nope.",
)
ASSERTIONS = (
    "It is {c}.", "The defect is {c}.", "{C}.", "I see {c}.", "This is clearly {c}.", "Final answer: {c}",
    "Probably {c}.", "It's {c}, not good.", "Yes, {c}.", "The image shows {c} near the edge.", "**{C}**",
    "Answer: **{c}**", "After comparing with the reference, I conclude it is {c}.", "My answer is {c}.",
    "Definitely {c}.", "There is {c} on the part.", "{C} is visible in the outlined region.", "Without a doubt, {c}.",
    "No doubt: {c}.", "I'd say {c}.", "Looks like {c} to me.", "{C}, clearly.", "The outlined area shows {c}.",
    "Class: {c}", '{{"class": "{c}"}}', "It's {c}. No other defects.", "Not good: {c}.", "{C} is present.",
    "Is it {c}? Yes.", "{C}: yes", "| {c} | ✓ |", "I believe this is {c}.", "This must be {c}.",
    "I'm confident it's {c}.", "The defect type is {c}, which matches the description.", "It's {c} rather than good.",
)


def readings(templates):
    for template in templates:
        for name in NAMES:
            reply = template.format(c=name, C=name.capitalize())
            yield reply, name.replace(" ", "_"), read_answer(reply, CANDIDATES)


def test_no_denial_or_refusal_reads_as_the_class_it_names():
    misread = [f"{reply!r} -> {r.key} ({r.rule})" for reply, key, r in readings(DENIALS) if r.key == key]
    assert not misread, f"{len(misread)} of {len(DENIALS) * len(NAMES)} denials read as the denied class:\n" + "\n".join(misread)


def test_every_assertion_reads_as_its_class():
    wrong = [f"{reply!r} -> {r.key or r.error} ({r.rule}: {r.detail})"
             for reply, key, r in readings(ASSERTIONS) if r.key != key]
    assert not wrong, f"{len(wrong)} of {len(ASSERTIONS) * len(NAMES)} assertions misread:\n" + "\n".join(wrong)


@pytest.mark.parametrize("template", ["I cannot tell whether it is {c}.", "I'm not sure if it's {c}.",
                                      "Sorry, I can't say whether it's {c}."])
def test_refusals_that_scope_a_class_are_refused(template):
    assert {r.error for _, _, r in readings([template])} == {"refused"}
