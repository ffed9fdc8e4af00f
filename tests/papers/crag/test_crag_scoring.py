"""The scorer against our hand-labelled set, the judge's parser, truncation, summaries, and one
test per bug of the official script that we fix."""

from __future__ import annotations

import asyncio
import re

import pytest

from paperlab.papers.crag import (
    breakdown,
    official_script_label,
    parse_judge_reply,
    score_answer,
    score_records,
    summary,
    truncate,
)
from paperlab.papers.crag.labelled import CASES, KINDS


async def oracle_judge(query: str, gold: str, prediction: str) -> int:
    """A judge that reads like a careful human on our cases: the prediction's last number or
    word must equal the gold's."""
    last = lambda s: (re.findall(r"[a-z0-9]+", s.lower()) or [""])[-1]  # noqa: E731
    return int(last(prediction) == last(gold))


def _label(case, judge=oracle_judge) -> tuple[str, str]:
    return asyncio.run(
        score_answer(case.query, case.answer, case.alt_ans, case.prediction, judge=judge)
    )


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}-{i}" for i, c in enumerate(CASES)])
def test_hand_labelled_set(case):
    label, how = _label(case)
    assert label == case.label
    if case.kind in ("exact", "missing"):
        assert how in ("exact", "missing", "empty")


def test_every_kind_is_labelled_and_rule_kinds_need_no_judge():
    assert {c.kind for c in CASES} == set(KINDS)
    calls = []

    async def counting(q, g, p):
        calls.append(p)
        return 0

    for case in CASES:
        if case.kind in ("exact", "missing", "invalid"):
            assert _label(case, counting)[0] == case.label
    assert calls == []


def test_judged_cases_follow_the_judge():
    judged = [c for c in CASES if c.kind == "judged"]

    async def yes(q, g, p):
        return 1

    async def unparsed(q, g, p):
        return None

    assert all(_label(c, yes) == ("correct", "judge") for c in judged)
    assert all(_label(c, unparsed) == ("incorrect", "judge-unparsed") for c in judged)
    assert all(_label(c, None)[0] == "incorrect" for c in judged)  # exact rules only


# -- the official script's bugs, fixed ---------------------------------------------------------


def test_bug_loop_over_characters_of_the_gold_answer():
    # the official loop compares the prediction with each character of "41": "4" matches
    official = asyncio.run(official_script_label("q", "41", (), "4"))
    ours = asyncio.run(score_answer("q", "41", (), "4"))
    assert official == "correct" and ours == ("incorrect", "no-judge")
    # ... and a false premise answered right is wrong there ("invalid" is in no character)
    assert asyncio.run(official_script_label("q", "invalid question", (), "invalid question")) == (
        "incorrect"
    )


def test_bug_alternative_answers_never_used():
    alt = ("23, 41", "41 and 23")
    assert asyncio.run(official_script_label("q", "41, 23", alt, "23, 41")) == "incorrect"
    assert asyncio.run(score_answer("q", "41, 23", alt, "23, 41")) == ("correct", "exact")


def test_bug_variable_used_before_assignment():
    # the official script reads `prediction_lowercase` before assigning it: its first missing
    # answer crashes it; ours scores a file that starts with one
    records = [
        {"interaction_id": "a", "query": "q", "answer": "41", "alt_ans": []},
        {"interaction_id": "b", "query": "q", "answer": "7", "alt_ans": []},
    ]
    items = score_records(records, {"a": "I don't know", "b": "7"})
    assert [(i.label, i.how) for i in items] == [("missing", "missing"), ("correct", "exact")]


# -- pieces ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, score",
    [
        ('{"score": 1, "explanation": "matches"}', 1),
        ('{"score": 0, "explanation": "x"} Wait, no! {"score": 1, "explanation": "y"}', 1),
        ('{"score": 1} Wait, no. {"explanation": "z", "score": 0}', 0),
        ('{"score": "1"}', 1),
        ("{'score': 1}", None),  # not JSON, and no "score": in quotes
        ('{"score": 2}', None),
        ('41x {"score": 1', None),
        ("no json here", None),
        ('11= 44= {"score": 1}', 1),
    ],
)
def test_parse_judge_reply_takes_the_last_json_object(reply, score):
    assert parse_judge_reply(reply) == score


def test_truncate_to_the_token_budget():
    text = " ".join(f"w{i}" for i in range(100))
    assert truncate(text, 75).split() == [f"w{i}" for i in range(75)]
    assert truncate("a, b.", 3) == "a, b"
    assert truncate("short", 75) == "short"
    with pytest.raises(ValueError, match="budget"):
        truncate("x", 0)
    # a correct answer buried after the budget is not read
    long = "filler " * 80 + "41"
    assert asyncio.run(score_answer("q", "41", (), long, judge=oracle_judge))[0] == "incorrect"


def test_summary_and_breakdowns():
    records = [
        {"interaction_id": str(i), "query": "q", "answer": "1", "alt_ans": [], "domain": d}
        for i, d in enumerate(["music", "music", "movie", "movie"])
    ]
    items = score_records(records, {"0": "1", "1": "i don't know", "2": "2", "3": "1"})
    s = summary(items)
    assert (s["accuracy"], s["hallucination"], s["missing"]) == (0.5, 0.25, 0.25)
    assert s["score"] == pytest.approx(0.25)
    b = breakdown(items, "domain")
    assert b["music"]["score"] == 0.5 and b["movie"]["score"] == 0.0
    with pytest.raises(ValueError, match="by="):
        breakdown(items, "colour")
    with pytest.raises(ValueError, match="no prediction for 1 records"):
        score_records(records, {"0": "1", "1": "x", "2": "y"})
