"""The miniature's pieces: training examples carry the true grade in the official output
format, held-out sets, the config, and the claims' verdict functions (no training here)."""

from __future__ import annotations

import math
import random

import pytest

from paperlab.core.data.graded import grade
from paperlab.papers.prometheus2 import claims, miniature
from paperlab.papers.prometheus2.parser import parse_absolute, parse_relative


def test_absolute_example_replies_with_the_true_score():
    rng = random.Random(0)
    for _ in range(50):
        messages, reply = miniature.absolute_example(rng)
        (user,) = messages  # compact template, no system prompt
        text = user["content"]
        response = text.split("Response: ")[1].split("\n")[0]
        reference = text.split("Reference: ")[1].split("\n")[0]
        assert parse_absolute(reply).result == grade(reference, response)
        assert text.endswith("Score:")


def test_relative_example_replies_with_the_better_response():
    rng = random.Random(1)
    labels = []
    for _ in range(60):
        messages, reply = miniature.relative_example(rng)
        text = messages[0]["content"]
        a = text.split("\nA: ")[1].split("\n")[0]
        b = text.split("\nB: ")[1].split("\n")[0]
        ref = text.split("Reference: ")[1].split("\n")[0]
        winner = parse_relative(reply).result
        assert grade(ref, a if winner == "A" else b) > grade(ref, b if winner == "A" else a)
        labels.append(winner)
    assert 0.3 < labels.count("A") / len(labels) < 0.7  # no position prior to learn


def test_held_out_sets_are_seeded():
    assert miniature.eval_items(5, 0) == miniature.eval_items(5, 0)
    assert miniature.eval_items(5, 0) != miniature.eval_items(5, 1)
    pairs = miniature.eval_pairs(20, 0)
    assert all(p.a.score != p.b.score and p.a.instruction == p.b.instruction for p in pairs)


def test_evaluator_names():
    names = miniature.evaluator_names()
    assert names[:3] == ("absolute", "relative", "joint") and "merge-linear" in names


@pytest.mark.parametrize(
    ("field", "value"), [("dim", 0), ("eval_items", 2), ("temperature", -1.0), ("base_lr", 0.0)]
)
def test_config_rejects_bad_fields(field, value):
    with pytest.raises(ValueError, match=field):
        claims.Prometheus2ClaimsConfig(**{field: value})


POWERED = {"expert_pearson": 0.8, "expert_accuracy": 0.9}


def test_verdicts():
    weak = {"expert_pearson": 0.2, "expert_accuracy": 0.9, "merged_pearson": 0.9}
    assert claims.judge_direct(weak)[0] == "inconclusive"
    assert claims.judge_direct({**POWERED, "merged_pearson": math.nan})[0] == "fails"
    assert claims.judge_direct({**POWERED, "merged_pearson": 0.65})[0] == "holds"
    assert claims.judge_unified({**POWERED, "pearson_gap": -0.01, "accuracy_gap": 0.1})[0] == (
        "holds"
    )
    assert claims.judge_unified({**POWERED, "pearson_gap": -0.2, "accuracy_gap": 0.0})[0] == (
        "fails"
    )
    merge = {**POWERED, "merged_mean": 0.7, "joint_mean": 0.71}
    assert claims.judge_merge({**merge, "merge_gain": -0.01})[0] == "inconclusive"
    assert claims.judge_merge({**merge, "merge_gain": -0.1})[0] == "fails"
    assert claims.judge_merge({**merge, "merge_gain": 0.05})[0] == "holds"
