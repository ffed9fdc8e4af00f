"""MMLU-Redux: detection programs (exact prompts), heuristics, metrics, re-scoring."""

from __future__ import annotations

import json

import pytest

from paperlab.papers.mmlu_redux.detect import (
    COT_INSTRUCTION,
    Detector,
    assessment,
    compact_verbalise,
    detection_metrics,
    heuristic_detect,
)
from paperlab.papers.mmlu_redux.records import Record
from paperlab.papers.mmlu_redux.rescore import rescore, scores
from paperlab.papers.mmlu_redux.taxonomy import INSTRUCTION


def rec(label: str = "ok", **kw) -> Record:
    base = dict(question="What is the code of kiv?", choices=["K", "L", "M", "N"], answer=0)
    return Record(**{**base, **kw}, error_type=label)


def test_zero_shot_program_renders_the_official_prompt() -> None:
    msgs = Detector("zero_shot").messages(rec())
    assert msgs == [
        {"role": "system", "content": INSTRUCTION},
        {
            "role": "user",
            "content": "Question: What is the code of kiv?\nChoices:\nA. K\nB. L\nC. M\nD. N\n"
            "Ground Truth Answer: A. K\nYour Response: ",
        },
    ]


def test_few_shot_cot_with_retrieval_renders_shots_then_the_record() -> None:
    shot = rec("wrong_groundtruth", answer=1)
    d = Detector(
        "few_shot_cot",
        shots=[shot],
        retriever=lambda q: ["The code of kiv is K."],
        reasoning=lambda r: "kiv is K.",
    )
    msgs = d.messages(rec())
    assert msgs[0] == {"role": "system", "content": COT_INSTRUCTION}
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"].startswith("Context:\nThe code of kiv is K.\n\nQuestion: ")
    reasoning, body = msgs[2]["content"].split("\n", 1)
    assert reasoning == "kiv is K." and json.loads(body) == assessment("wrong_groundtruth")
    assert d.name == "few_shot_cot+retrieval"
    assert Detector("zero_shot", compact=True).answer_json("ok") == '{"Classification": "OK"}'


def test_compact_layout_puts_passages_first_and_the_truth_last() -> None:
    d = Detector("zero_shot", retriever=lambda q: ["The code of kiv is K."], layout="compact")
    text = "The code of kiv is K.\nWhat is the code of kiv?\nA. K\nB. L\nC. M\nD. N\nTruth: B. L"
    assert d.user_message(rec("wrong_groundtruth", answer=1)) == text
    assert compact_verbalise("Q?", ["x", "y"], None) == "Q?\nA. x\nB. y\nTruth: n/a"
    # the official layout is untouched by the option
    assert Detector("zero_shot").user_message(rec()).startswith("Question: What is the code")


def test_bad_detector_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="layout"):
        Detector("zero_shot", layout="tight")
    with pytest.raises(ValueError, match="method"):
        Detector("psychic")
    with pytest.raises(ValueError, match="needs shots"):
        Detector("few_shot")


def test_heuristics() -> None:
    assert heuristic_detect(rec()) == "ok"
    assert heuristic_detect(rec(answer=None)) == "no_correct_answer"
    assert heuristic_detect(rec(choices=["K", "L", "M", "N", "O"])) == "bad_options_clarity"
    assert heuristic_detect(rec(choices=["K", "", "M", "N"])) == "bad_options_clarity"
    assert heuristic_detect(rec(choices=["Kay", "kay.", "Em", "En"])) == "multiple_correct_answers"
    assert heuristic_detect(rec(question="What is in the table above?")) == "bad_question_clarity"
    assert heuristic_detect(rec("wrong_groundtruth", answer=1)) == "ok"  # invisible to rules


def test_metrics_count_errors_as_the_positive_class() -> None:
    truth = ["ok", "ok", "wrong_groundtruth", "no_correct_answer", "expert"]
    pred = ["ok", "wrong_groundtruth", "wrong_groundtruth", None, "ok"]
    m = detection_metrics(truth, pred)
    # errors: 2 true; flagged: 2, of which 1 is an error -> P 0.5, R 0.5 ("expert" left out)
    assert m["overall"]["precision"] == 0.5 and m["overall"]["recall"] == 0.5
    assert m["overall"]["f2"] == pytest.approx(0.5)
    assert m["wrong_groundtruth"]["precision"] == 0.5 and m["wrong_groundtruth"]["recall"] == 1
    assert m["no_correct_answer"]["recall"] == 0
    assert m["overall"]["exact"] == pytest.approx(2 / 4)
    f2 = (1 + 4) * 0.5 * 1.0 / (4 * 0.5 + 1.0)
    assert m["wrong_groundtruth"]["f2"] == pytest.approx(f2)


def test_rescoring_against_corrected_labels() -> None:
    records = [
        rec(id="a"),
        rec("wrong_groundtruth", answer=1, id="b", meta={"original_groundtruth": 0}),
        rec("bad_question_clarity", id="c"),
        rec(id="d"),
    ]
    knows = [0, 0, 0, 0]  # a model that is always right
    guesser = [0, 1, 0, 2]
    assert scores(records, knows) == {
        "original": 0.75,
        "filtered": 1.0,
        "corrected": 1.0,
        "n": 4.0,
        "n_ok": 2.0,
    }
    out = rescore(records, {"knows": knows, "guesser": guesser})
    assert out["knows_original"] == 0.75 and out["guesser_original"] == 0.75
    assert out["guesser_filtered"] == 0.5 and out["error_rate"] == 0.5
    with pytest.raises(ValueError, match="answers"):
        scores(records, [0])


def test_claim_judges() -> None:
    from paperlab.papers.mmlu_redux.claims import judge_detection, judge_rankings

    ranks = dict(skill_spread=0.5, tau_high=0.6, tau_low=0.95, moved_high=4.0)
    assert judge_rankings(ranks)[0] == "holds"
    assert judge_rankings({**ranks, "tau_high": 0.9})[0] == "inconclusive"
    assert judge_rankings({**ranks, "tau_high": 0.97})[0] == "fails"
    assert judge_rankings({**ranks, "skill_spread": 0.1})[0] == "inconclusive"
    det = dict(
        retrieval_hit=0.95,
        best_exact=0.8,
        best_f2=0.9,
        heur_overall_f2=0.7,
        wrong_gt_f2_with_retrieval=0.8,
        wrong_gt_f2_without_retrieval=0.1,
        ok_kept_with_retrieval=0.9,
    )
    assert judge_detection(det)[0] == "holds"
    assert judge_detection({**det, "best_f2": 0.6})[0] == "fails"
    assert judge_detection({**det, "wrong_gt_f2_with_retrieval": 0.2})[0] == "inconclusive"
    assert judge_detection({**det, "retrieval_hit": 0.5})[0] == "inconclusive"
    # a detector that flags every record with a passage is not powered
    flags_all = judge_detection({**det, "ok_kept_with_retrieval": 0.1})
    assert flags_all[0] == "inconclusive" and "ok records kept" in flags_all[1]
