"""The official templates render, the rubric validates its five descriptions."""

from __future__ import annotations

import pytest

from paperlab.papers.prometheus2.prompts import (
    ABS_SYSTEM_PROMPT,
    ABSOLUTE_PROMPT,
    ABSOLUTE_PROMPT_WO_REF,
    REL_SYSTEM_PROMPT,
    RELATIVE_PROMPT,
    RELATIVE_PROMPT_WO_REF,
    Rubric,
    absolute_messages,
    relative_messages,
)

RUBRIC = Rubric(
    criteria="Is the answer correct?",
    score_descriptions=("wrong", "mostly wrong", "half right", "nearly right", "exact"),
)


def test_templates_have_the_official_fields_and_format_line():
    for t in (ABSOLUTE_PROMPT, ABSOLUTE_PROMPT_WO_REF):
        assert "{instruction}" in t and "{response}" in t and "{rubric}" in t
        assert '"(write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"' in t
        assert t.endswith("###Feedback: ")
    for t in (RELATIVE_PROMPT, RELATIVE_PROMPT_WO_REF):
        assert "{response_A}" in t and "{response_B}" in t
        assert '"(write a feedback for criteria) [RESULT] (A or B)"' in t
        assert t.endswith("###Feedback: ")
    assert "###Reference Answer (Score 5):\n{reference_answer}" in ABSOLUTE_PROMPT
    assert "Reference" not in ABSOLUTE_PROMPT_WO_REF.split("###Task")[1].split("1.")[1]
    assert "###Reference Answer:\n{reference_answer}" in RELATIVE_PROMPT
    assert "{reference_answer}" not in RELATIVE_PROMPT_WO_REF


def test_rubric_renders_the_official_layout():
    assert RUBRIC.render() == (
        "[Is the answer correct?]\nScore 1: wrong\nScore 2: mostly wrong\n"
        "Score 3: half right\nScore 4: nearly right\nScore 5: exact"
    )
    assert RUBRIC.criteria_line() == "[Is the answer correct?]"


def test_absolute_messages_with_and_without_reference():
    system, user = absolute_messages("What is 2+2?", "5", RUBRIC, reference_answer="4")
    assert system == {"role": "system", "content": ABS_SYSTEM_PROMPT}
    assert user["role"] == "user"
    assert (
        "###The instruction to evaluate:\nWhat is 2+2?\n\n###Response to evaluate:\n5\n"
        in (user["content"])
    )
    assert "###Reference Answer (Score 5):\n4\n" in user["content"]
    assert RUBRIC.render() in user["content"]
    _, user = absolute_messages("What is 2+2?", "5", "my rubric text")
    assert "Reference Answer" not in user["content"]
    assert "###Score Rubrics:\nmy rubric text\n\n###Feedback: " in user["content"]


def test_relative_messages_use_the_criteria_line():
    system, user = relative_messages("Q?", "first", "second", RUBRIC, reference_answer="ref")
    assert system["content"] == REL_SYSTEM_PROMPT
    text = user["content"]
    assert "###Response A:\nfirst\n\n###Response B:\nsecond\n" in text
    assert "###Reference Answer:\nref\n" in text
    assert "###Score Rubric:\n[Is the answer correct?]\n\n###Feedback: " in text
    assert "Score 1:" not in text


def test_braces_in_inputs_are_kept_verbatim():
    _, user = absolute_messages("Format {x} as JSON", "{'a': 1}", RUBRIC)
    assert "Format {x} as JSON" in user["content"] and "{'a': 1}" in user["content"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"criteria": "", "score_descriptions": ("a",) * 5}, "criteria"),
        ({"criteria": "C", "score_descriptions": ("a",) * 4}, "score_descriptions"),
        ({"criteria": "C", "score_descriptions": ("a",) * 6}, "score_descriptions"),
        ({"criteria": "C", "score_descriptions": ("a", "b", "", "d", "e")}, r"score 3"),
        ({"criteria": "C", "score_descriptions": "abcde"}, "score_descriptions"),
    ],
)
def test_rubric_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Rubric(**kwargs)


def test_rubric_from_mapping():
    data = {"criteria": "C", **{f"score{i}_description": f"d{i}" for i in range(1, 6)}}
    assert Rubric.from_mapping(data).score_descriptions == ("d1", "d2", "d3", "d4", "d5")
    del data["score4_description"]
    with pytest.raises(ValueError, match="score4_description"):
        Rubric.from_mapping(data)
    with pytest.raises(ValueError, match="criteria"):
        Rubric.from_mapping({})


def test_bad_rubric_argument():
    with pytest.raises(ValueError, match="rubric"):
        absolute_messages("Q", "A", "  ")
