"""MMLU-Redux: the tiny detector's training mix (the detection task, the reading task)."""

from __future__ import annotations

import random

import pytest

from paperlab.papers.mmlu_redux.taxonomy import parse_classification
from paperlab.papers.mmlu_redux.world import (
    CONTEXT_PAIR_SHARE,
    CONTEXT_SHARE,
    detection_task,
    detector_tasks,
    make_world,
    reading_task,
)


@pytest.fixture(scope="module")
def world():
    return make_world(("a", "b"), 30, seed=3)


def test_passage_examples_draw_ok_and_wrong_ground_truth_equally(world) -> None:
    example, rng = detection_task(world), random.Random(0)
    with_passage, without = [], []
    for _ in range(1500):
        messages, reply = example(rng)
        label = parse_classification(reply)
        (with_passage if "The code of" in messages[-1]["content"] else without).append(label)
    share = len(with_passage) / 1500
    assert abs(share - CONTEXT_SHARE) < 0.05
    ok = with_passage.count("ok") / len(with_passage)
    wrong = with_passage.count("wrong_groundtruth") / len(with_passage)
    assert abs(ok - CONTEXT_PAIR_SHARE) < 0.05 and abs(wrong - CONTEXT_PAIR_SHARE) < 0.05
    assert "wrong_groundtruth" not in without  # invisible without a passage: never drawn
    assert without.count("ok") > len(without) / 4


def test_reading_task_asks_the_passage_code(world) -> None:
    example, rng = reading_task(world), random.Random(1)
    codes = {f.name: f.code for f in world.facts}
    for _ in range(20):
        messages, reply = example(rng)
        passage, question = messages[0]["content"].split("\n")
        name = question.removeprefix("What is the code of ").rstrip("?")
        assert passage == f"The code of {name} is {codes[name]}." and reply == codes[name]


def test_detector_tasks_weights(world) -> None:
    assert len(detector_tasks(world, 0.0)) == 1
    tasks = detector_tasks(world, 0.5)
    assert [w for _, w in tasks] == [1.0, 0.5]
    with pytest.raises(ValueError, match="reading_weight"):
        detector_tasks(world, -1.0)
