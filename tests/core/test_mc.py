"""paperlab.core.mc: the multiple-choice evaluation core."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paperlab.core.mc import (
    MCItem,
    accuracy,
    extract_choice,
    make_mc_items,
    mmlu_prompt,
    rank_models,
    ranking_change,
    read_mc_jsonl,
    write_mc_jsonl,
)


def test_items_are_validated_naming_the_field() -> None:
    with pytest.raises(ValueError, match="options"):
        MCItem("q?", ("1", "2", "3"), 0)
    with pytest.raises(ValueError, match="answer"):
        MCItem("q?", ("1", "2", "3", "4"), 4)
    with pytest.raises(ValueError, match="answer"):
        MCItem("q?", ("1", "2", "3", "4"), True)
    with pytest.raises(ValueError, match="question"):
        MCItem(" ", ("1", "2", "3", "4"), 0)
    assert MCItem("q?", ["1", "2", "3", "4"], None).answer_letter is None


def test_mmlu_prompt_layout() -> None:
    shot = MCItem("What is 1 + 1?", ("1", "2", "3", "4"), 1, subject="basic_math")
    item = MCItem("What is 2 + 2?", ("4", "5", "6", "7"), 0, subject="basic_math")
    assert mmlu_prompt(item, shots=[shot]) == (
        "The following are multiple choice questions (with answers) about basic math.\n\n"
        "What is 1 + 1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
        "What is 2 + 2?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer:"
    )


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("B", 1),
        (" (C)", 2),
        ("D. 12", 3),
        ("Let's see: A is too small, so the answer is (C).", 2),
        ("Answer: A", 0),
        ("I think the answer is B, not A... Therefore, the answer is D", 3),
        ("The correct option is (B) because 7+5=12", 1),
        ("12, which is option C", 2),
        ("no idea", None),
        ("A or B?", None),
        ("", None),
    ],
)
def test_extract_choice(text: str, choice: int | None) -> None:
    assert extract_choice(text) == choice


def test_synthetic_items_are_exact_and_reproducible() -> None:
    items = make_mc_items(60, seed=3)
    assert items == make_mc_items(60, seed=3) and items != make_mc_items(60, seed=4)
    assert {i.answer for i in items} == {0, 1, 2, 3}
    for item in items:
        assert len(set(item.options)) == 4
        right = int(item.options[item.answer])
        q = item.question
        if item.subject == "addition":
            a, b = (int(x) for x in q.removeprefix("What is ").rstrip("?").split(" + "))
            assert right == a + b
        if item.subject == "comparison":
            assert right == max(int(o) for o in item.options)
    with pytest.raises(ValueError, match="subjects"):
        make_mc_items(3, subjects=["poetry"])


def test_jsonl_round_trip_and_bad_lines_are_reported(tmp_path: Path) -> None:
    items = make_mc_items(5, seed=0)
    path = write_mc_jsonl(items, tmp_path / "mc.jsonl")
    with open(path, "ab") as f:
        f.write(b'{"question": "q?", "options": ["a", "b", "c"], "answer": 0}\n')
        f.write(b"not json\n\n")
        f.write(json.dumps({"question": "q?", "choices": list("wxyz"), "answer": "c"}).encode())
        f.write(b"\n\xff\xfe\n")
    report = read_mc_jsonl(path)
    assert report.items[:5] == items and report.items[5].answer == 2
    assert [s.split(":")[0] for s in report.skipped] == ["line 6", "line 7", "line 10"]
    assert "options" in report.skipped[0]
    assert report.summary() == "6 items read, 3 skipped"


def test_accuracy_interval_and_rankings() -> None:
    acc = accuracy([True] * 70 + [False] * 30, seed=1)
    assert acc.value == pytest.approx(0.7) and acc.low < 0.7 < acc.high and acc.n == 100
    assert 0.55 < acc.low and acc.high < 0.85
    with pytest.raises(ValueError, match="empty"):
        accuracy([])
    assert rank_models({"a": 0.5, "b": 0.7, "c": 0.5}) == ["b", "a", "c"]
    same = ranking_change({"a": 0.5, "b": 0.7, "c": 0.6}, {"a": 0.4, "b": 0.9, "c": 0.8})
    assert same["kendall_tau"] == pytest.approx(1.0) and same["n_moved"] == 0
    moved = ranking_change({"a": 0.5, "b": 0.7, "c": 0.6}, {"a": 0.9, "b": 0.7, "c": 0.6})
    assert moved["move_a"] == 2 and moved["max_move"] == 2 and moved["kendall_tau"] < 0
