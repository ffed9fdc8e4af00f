"""MMLU-Redux: the taxonomy, the loader of both released shapes, the corruption tool."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from paperlab.papers.mmlu_redux.corrupt import NO_CORRECT_TEXT, corrupt, corrupt_records
from paperlab.papers.mmlu_redux.records import Record, load_annotations, write_records
from paperlab.papers.mmlu_redux.taxonomy import (
    ERROR_TYPES,
    PAPER_MIX,
    normalize_label,
    parse_classification,
    verbalise,
)

HEADER = "question;choices;answer;error_type;source;correct_answer;potential_reason\n"


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("OK", "ok"),
        ("Wrong Groundtruth", "wrong_groundtruth"),
        ("wrong_groundtruth", "wrong_groundtruth"),
        ("No Correct Answer", "no_correct_answer"),
        ("Multiple Correct Answer", "multiple_correct_answers"),
        ("bad_options_clarity", "bad_options_clarity"),
        (" Bad Question Clarity ", "bad_question_clarity"),
        ("expert", "expert"),
    ],
)
def test_label_spellings_normalise(raw: str, label: str) -> None:
    assert normalize_label(raw) == label


def test_unknown_label_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown label 'maybe'"):
        normalize_label("maybe")


def test_loader_reads_every_released_shape_and_reports_oddities(tmp_path: Path) -> None:
    d = tmp_path / "mmlu_redux"
    d.mkdir()
    (d / "mmlu_anatomy.csv").write_bytes(
        b"\xef\xbb\xbf"
        + (
            HEADER
            + "What is it?;['a', 'b', 'c', 'd'];3;OK;src;;\n"
            + "Which one?;\"['x', \"\"y's\"\", 'z', 'w']\";0;Wrong Groundtruth;src;B;why\n"
        ).encode()
    )
    (d / "mmlu_virology.csv").write_text(
        HEADER.replace(";", ",") + "Q?,\"['1', '2', '3', '4']\",1,no_correct_answer,s,,\n"
    )
    (d / "mmlu_law.csv").write_bytes(
        (HEADER + "Caf\xe9?;['a', 'b', 'c', 'd'];2;ok;s;;\nBad;not a list;0;OK;s;;\n").encode(
            "cp1252"
        )
    )
    rows = [
        {"question": "J?", "choices": ["p", "q", "r", "s"], "answer": 1, "error_type": "expert"},
        {"question": "K?", "choices": ["p", "q"], "answer": 5, "error_type": "ok"},
    ]
    (d / "mmlu_astronomy.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = load_annotations(d)
    labels = {(r.subject, r.error_type) for r in report.records}
    assert labels == {
        ("anatomy", "ok"),
        ("anatomy", "wrong_groundtruth"),
        ("virology", "no_correct_answer"),
        ("law", "ok"),
        ("astronomy", "expert"),
    }
    wrong = next(r for r in report.records if r.error_type == "wrong_groundtruth")
    assert wrong.choices[1] == "y's" and wrong.correct_answer == "B"
    law = next(r for r in report.records if r.subject == "law")
    assert law.question == "Café?"
    notes = " | ".join(report.notes)
    assert "byte-order mark" in notes and "not UTF-8" in notes and "',' delimited" in notes
    assert "'Wrong Groundtruth'" in notes
    assert len(report.skipped) == 2  # "not a list" and the out-of-range answer, with lines
    assert any("mmlu_law.csv:3" in s for s in report.skipped)
    assert any("mmlu_astronomy.jsonl:2" in s for s in report.skipped)


def test_unknown_label_names_file_row_and_label(tmp_path: Path) -> None:
    f = tmp_path / "mmlu_x.csv"
    f.write_text(
        HEADER + "Q?;['a', 'b', 'c', 'd'];0;OK;s;;\nQ2?;['a', 'b', 'c', 'd'];0;Dunno;s;;\n"
    )
    with pytest.raises(ValueError, match=r"mmlu_x.csv:3: unknown label 'Dunno'"):
        load_annotations(f)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    f = tmp_path / "mmlu_y.csv"
    f.write_text("question;answer\nQ?;0\n")
    with pytest.raises(ValueError, match=r"missing columns \['choices', 'error_type'\]"):
        load_annotations(f)


def clean(i: int = 0) -> Record:
    return Record(f"What is the code of n{i}?", ["K", "L", "M", "N"], 2, id=f"r{i}")


def test_each_corruption_does_what_the_taxonomy_says() -> None:
    rng = random.Random(0)
    r = clean()
    w = corrupt(r, "wrong_groundtruth", rng)
    assert w.answer != 2 and w.choices == r.choices and w.meta["original_groundtruth"] == 2
    n = corrupt(r, "no_correct_answer", rng)
    assert n.answer is None and n.choices[2] == NO_CORRECT_TEXT and "M" not in n.choices
    m = corrupt(r, "multiple_correct_answers", rng)
    assert len(m.choices) == 5 and m.choices[m.answer] == "M" and m.meta["added_correct_answer"]
    b = corrupt(r, "bad_options_clarity", rng)
    assert len(b.choices) == 5 and b.choices[b.answer] == "M"
    q = corrupt(r, "bad_question_clarity", rng)
    assert q.question != r.question and q.meta["original_question"] == r.question
    assert [x.error_type for x in (w, n, m, b, q)] == [
        "wrong_groundtruth",
        "no_correct_answer",
        "multiple_correct_answers",
        "bad_options_clarity",
        "bad_question_clarity",
    ]
    assert r == clean()  # the input is never modified
    with pytest.raises(ValueError, match="only clean records"):
        corrupt(w, "no_correct_answer", rng)


def test_corruption_rates_match_the_mix_and_are_reproducible() -> None:
    records = [clean(i) for i in range(3000)]
    out = corrupt_records(records, PAPER_MIX, seed=1)
    assert out == corrupt_records(records, PAPER_MIX, seed=1)
    for t in ERROR_TYPES:
        share = sum(r.error_type == t for r in out) / len(out)
        assert abs(share - 0.1) < 0.02, (t, share)
    with pytest.raises(ValueError, match="sum to"):
        corrupt_records(records, {t: 0.3 for t in ERROR_TYPES})
    with pytest.raises(ValueError, match="unknown error type"):
        corrupt_records(records, {"typo": 0.1})


def test_records_round_trip(tmp_path: Path) -> None:
    out = corrupt_records([clean(i) for i in range(20)], PAPER_MIX, seed=2)
    path = write_records(out, tmp_path / "r.jsonl")
    assert load_annotations(path).records == out


def test_verbaliser_and_parser() -> None:
    text = verbalise("Q?", ["a", "b", "c", "d", "e"], 4)
    assert text == (
        "Question: Q?\nChoices:\nA. a\nB. b\nC. c\nD. d\nE. e\nGround Truth Answer: E. e\n"
        "Your Response: "
    )
    assert verbalise("Q?", ["a", "b"], None).endswith("Ground Truth Answer: n/a\nYour Response: ")
    reply = 'Step 4: wrong.\n{"Answer Evaluation": "One", "Classification": "Wrong Groundtruth"}'
    assert parse_classification(reply) == "wrong_groundtruth"
    assert parse_classification('{"classification": "OK"}') == "ok"
    assert parse_classification("Classification: Bad Options Clarity") == "bad_options_clarity"
    assert parse_classification("I am not sure") is None
