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
    assert names[:4] == ("base", "absolute", "relative", "joint") and "merge-linear" in names


@pytest.mark.parametrize(
    ("field", "value"), [("dim", 0), ("eval_items", 2), ("temperature", -1.0), ("base_lr", 0.0)]
)
def test_config_rejects_bad_fields(field, value):
    with pytest.raises(ValueError, match=field):
        claims.Prometheus2ClaimsConfig(**{field: value})


POWERED = {"expert_pearson": 0.8, "expert_accuracy": 0.9, "base_parse": 1.0}


def test_verdicts():
    weak = {"expert_pearson": 0.2, "expert_accuracy": 0.9, "base_parse": 1.0, "merged_pearson": 0.9}
    assert claims.judge_direct(weak)[0] == "inconclusive"
    mute = {**POWERED, "base_parse": 0.5, "merged_pearson": 0.9}
    verdict, why = claims.judge_direct(mute)
    assert verdict == "inconclusive" and "base" in why
    assert claims.judge_merge({**mute, "merge_gain": 0.1, "merged_mean": 1, "joint_mean": 0.9})[
        0
    ] == ("inconclusive")
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


def test_digit_check_compares_digit_by_digit_units_first():
    assert miniature.digit_check("86", "85") == "65x 88= 00="
    assert miniature.digit_check("122", "122") == "22= 22= 11="
    assert miniature.digit_check("no idea", "7") == "-7x -0x -0x"
    with pytest.raises(ValueError, match="reference"):
        miniature.digit_check("3", "none")


def test_relative_feedback_scores_each_response():
    messages, reply = miniature.relative_example(random.Random(3))
    text = messages[0]["content"]
    ref = text.split("Reference: ")[1].split("\n")[0]
    a = text.split("\nA: ")[1].split("\n")[0]
    b = text.split("\nB: ")[1].split("\n")[0]
    feedback = parse_relative(reply).feedback
    assert feedback.startswith(f"A {miniature.digit_check(a, ref)} {grade(ref, a)}, B ")
    assert feedback.rstrip().endswith(f"{miniature.digit_check(b, ref)} {grade(ref, b)}")


def test_base_and_finetune_fields_are_all_set_by_the_config():
    """Every field of the base and fine-tuning configs comes from prometheus2's config (or is
    pinned in claims.py): a change of core's defaults must not move prometheus2's figures."""
    from dataclasses import asdict

    cfg = claims.Prometheus2ClaimsConfig(
        dim=48,
        n_layers=2,
        n_heads=2,
        max_seq_len=160,
        base_steps=7,
        base_lr=0.02,
        base_warmup=3,
        answer_weight=0.4,
        compare_weight=0.6,
        expert_steps=5,
        finetune_lr=0.001,
        finetune_warmup=2,
        batch_size=8,
    )
    assert asdict(cfg.base_config()) == dict(
        dim=48,
        n_layers=2,
        n_heads=2,
        max_seq_len=160,
        steps=7,
        batch_size=8,
        lr=0.02,
        warmup=3,
        weight_decay=0.0,
        data_share=1.0,
        digits=2,
        ops="+-",
        answer_weight=0.4,
        compare_weight=0.6,
    )
    assert asdict(cfg.finetune_config(2)) == dict(
        steps=10, batch_size=8, lr=0.001, warmup=2, weight_decay=0.0
    )


def test_the_base_is_cached_under_its_own_fields():
    from paperlab.papers.prometheus2 import experiments

    cfg = claims.Prometheus2ClaimsConfig()
    assert set(experiments.base_spec(cfg)) < set(experiments.model_spec(cfg))
    assert "expert_steps" not in experiments.base_spec(cfg)


def test_format_examples_keep_the_shape_and_randomise_the_results():
    """The base's format stage: the expert's prompt and feedback, but results independent of
    the item (so the base knows the format, not the rubric)."""
    for example, fmt, parse in (
        (miniature.absolute_example, miniature.absolute_format_example, parse_absolute),
        (miniature.relative_example, miniature.relative_format_example, parse_relative),
    ):
        agree, n = 0, 200
        for i in range(n):
            messages, reply = example(random.Random(i))
            fmt_messages, fmt_reply = fmt(random.Random(i))
            assert fmt_messages == messages
            true, shaped = parse(reply), parse(fmt_reply)
            assert shaped is not None
            # the digit checks are the expert's; only the scores and the result are drawn
            digits = [w for w in true.feedback.split() if len(w) == 3]
            assert [w for w in shaped.feedback.split() if len(w) == 3] == digits
            agree += shaped.result == true.result
        assert agree / n < (0.35 if parse is parse_absolute else 0.65)  # chance: 1/5, 1/2
