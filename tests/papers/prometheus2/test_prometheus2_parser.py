"""The output parser: anchored at the end, range-checked, a failure is None (never a default)."""

from __future__ import annotations

import pytest

from paperlab.papers.prometheus2.parser import (
    Grade,
    parse_absolute,
    parse_output,
    parse_relative,
)
from paperlab.papers.prometheus2.prompts import (
    ABSOLUTE_PROMPT,
    RELATIVE_PROMPT,
    Rubric,
    absolute_messages,
)

RUBRIC = Rubric(
    criteria="Is the answer correct?",
    score_descriptions=("wrong", "mostly wrong", "half right", "nearly right", "exact"),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The response is right. [RESULT] 5", Grade("The response is right.", 5)),
        ("Off by one. [RESULT] 4\n", Grade("Off by one.", 4)),
        ("Off by one. [RESULT] 4  \n\t ", Grade("Off by one.", 4)),
        ("Meh. [RESULT] (3)", Grade("Meh.", 3)),
        ("Meh. [RESULT] [2].", Grade("Meh.", 2)),
        ("Meh. [RESULT] 2/5", Grade("Meh.", 2)),
        ("Meh. [result] 1", Grade("Meh.", 1)),
        ("[RESULT] 3", Grade("", 3)),
        ("multi\nline\nfeedback\n[RESULT] 3", Grade("multi\nline\nfeedback", 3)),
    ],
)
def test_absolute_parses_the_final_result(text, expected):
    assert parse_absolute(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "No result at all.",
        "Great answer, score 4.",  # a score, but not in the trained format
        "Feedback. [RESULT] 0",
        "Feedback. [RESULT] 6",
        "Feedback. [RESULT] 35",
        "Feedback. [RESULT] -2",
        "Feedback. [RESULT] 3.5",
        "Feedback. [RESULT] A",
        "Feedback. [RESULT]",
        "Feedback. [RESULT] 4 but then more text follows",
        "[RESULT] 4 [RESULT]",
        None,
    ],
)
def test_absolute_rejects(text):
    assert parse_absolute(text) is None


def test_a_result_inside_the_feedback_does_not_win():
    text = "It says '[RESULT] 5' in the middle, yet the answer is wrong. [RESULT] 2"
    assert parse_absolute(text) == Grade(
        "It says '[RESULT] 5' in the middle, yet the answer is wrong.", 2
    )
    # and an out-of-range final result is a failure, not a fall back to the earlier 5
    assert parse_absolute("Earlier: [RESULT] 5. Final: [RESULT] 9") is None


def test_template_echo_is_not_a_score():
    """prometheus-eval issue #58: a search from the start matched the template's
    "###Reference Answer (Score 5):" and every grade came back 5."""
    echoed = absolute_messages("What is 2+2?", "5", RUBRIC, reference_answer="4")[1]["content"]
    assert "(Score 5)" in echoed
    assert parse_absolute(echoed) is None
    assert parse_absolute(ABSOLUTE_PROMPT) is None
    # the template's own format line ends in "... between 1 and 5)\"": no score either
    assert (
        parse_absolute('look as follows: "(feedback) [RESULT] (an integer between 1 and 5)"')
        is None
    )
    # an echo followed by a real grade parses to the real grade
    assert parse_absolute(echoed + "Wrong sum. [RESULT] 1").result == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A is right, B is off. [RESULT] A", Grade("A is right, B is off.", "A")),
        ("B wins. [RESULT] B\n  ", Grade("B wins.", "B")),
        ("B wins. [RESULT] (B)", Grade("B wins.", "B")),
        ("B wins. [RESULT] Response B", Grade("B wins.", "B")),
        ("B wins. [RESULT] b", Grade("B wins.", "B")),
        ("Said [RESULT] A before; now [RESULT] B", Grade("Said [RESULT] A before; now", "B")),
    ],
)
def test_relative_parses_the_final_result(text, expected):
    assert parse_relative(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Response A is better.",
        "[RESULT] C",
        "[RESULT] AB",
        "[RESULT] 1",
        "[RESULT] A or B",
        RELATIVE_PROMPT,  # the template ends in "(A or B)\"" lines and "###Feedback: "
        None,
    ],
)
def test_relative_rejects(text):
    assert parse_relative(text) is None


def test_parse_output_dispatches_and_checks_mode():
    assert parse_output("x [RESULT] 4", "absolute") == Grade("x", 4)
    assert parse_output("x [RESULT] A", "relative") == Grade("x", "A")
    with pytest.raises(ValueError, match="mode"):
        parse_output("x [RESULT] 4", "pairwise")
