"""PoLL's agreement figures (the statistics are `paperlab.core.stats`', tested against SciPy and
scikit-learn in tests/core), and the pooling, ranking and bias helpers by hand."""

from __future__ import annotations

import math

import pytest

from paperlab.papers.poll import cohen_kappa, kendall_tau, pearson
from paperlab.papers.poll.poll import (
    accuracy,
    average_pool,
    label_agreement,
    max_vote,
    ranking_agreement,
    self_preference_bias,
    system_ranking,
    system_scores,
)

stats = pytest.importorskip("scipy.stats")


def test_agreement_edge_cases_poll_relies_on():
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert math.isnan(pearson([0.1, 0.1, 0.1], [3, 2, 1]))
    assert math.isnan(kendall_tau([1, 2, 3], [4, 4, 4]))
    assert math.isnan(kendall_tau([1], [2]))
    assert kendall_tau([1, 2, 3], [1, 2, 3]) == 1.0
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert cohen_kappa([True] * 4, [True] * 4) == 1.0  # expected agreement 1: defined as 1.0
    assert cohen_kappa([True, False, True], [False, True, False]) == pytest.approx(-0.8)
    assert cohen_kappa([None, True], [False, True]) == pytest.approx(1 / 3)  # None: a label
    assert accuracy([True, None, False], [True, False, False]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        cohen_kappa([True], [True, False])
    with pytest.raises(ValueError):
        accuracy([], [])


def test_max_vote():
    assert max_vote([True, True, False]) is True
    assert max_vote([False, False, True]) is False
    assert max_vote([True, None, None]) is True  # abstentions are ignored
    assert max_vote([True, False, None]) is False  # a tie is the conservative False
    assert max_vote([True, False]) is False
    assert max_vote([None, None, None]) is None
    assert max_vote([]) is None


def test_average_pool():
    assert average_pool([1, 2, 4]) == pytest.approx(7 / 3)
    assert average_pool([5, None, 3]) == 4.0
    assert average_pool([None, None]) is None
    assert average_pool([]) is None


def test_system_scores_ranking_and_agreement():
    values = [True, False, None, True, True, False]
    systems = ["a", "a", "a", "b", "b", "c"]
    scores = system_scores(values, systems)
    assert scores == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert system_ranking(scores) == ["b", "a", "c"]
    assert system_ranking({"x": 0.5, "w": 0.5, "z": math.nan, "y": 0.9}) == ["y", "w", "x", "z"]
    assert math.isnan(system_scores([None], ["a"])["a"])
    tau, r = ranking_agreement(scores, {"a": 0.4, "b": 0.9, "c": 0.1, "d": 1.0})
    assert tau == pytest.approx(1.0)  # "d" is not common to both: left out
    assert r == pytest.approx(stats.pearsonr([0.5, 1.0, 0.0], [0.4, 0.9, 0.1]).statistic)
    assert all(math.isnan(v) for v in ranking_agreement({"a": 1.0}, {"a": 2.0, "b": 1.0}))


def test_self_preference_bias_by_hand():
    # judge family "x". Wrong answers from x: 3, passed 2 (2/3); from others: 4, passed 1 (1/4).
    # Right answers never count, whatever the judge says about them.
    rows = [
        ("x", False, True),
        ("x", False, True),
        ("x", False, False),
        ("y", False, True),
        ("y", False, False),
        ("z", False, None),
        ("z", False, False),
        ("x", True, True),
        ("y", True, False),
        ("z", True, True),
    ]
    family, labels, verdicts = map(list, zip(*rows, strict=True))
    bias = self_preference_bias(verdicts, labels, family, "x")
    assert bias == pytest.approx(2 / 3 - 1 / 4)
    assert self_preference_bias(verdicts, labels, family, "y") == pytest.approx(1 / 2 - 2 / 5)
    assert math.isnan(self_preference_bias(verdicts, labels, family, "nobody"))
    assert math.isnan(self_preference_bias([True], [True], ["x"], "x"))
    with pytest.raises(ValueError):
        self_preference_bias([True], [True, False], ["x"], "x")


def test_label_agreement_counts_unparsed_votes_as_disagreements():
    labels = [True, False, True, False]
    table = {"a": [True, False, True, False], "panel": [True, None, None, False]}
    out = label_agreement(table, labels)
    assert out["a"] == {"accuracy": 1.0, "kappa": 1.0, "unparsed": 0.0}
    assert out["panel"]["accuracy"] == 0.5 and out["panel"]["unparsed"] == 2.0
    assert out["panel"]["kappa"] == pytest.approx(cohen_kappa([True, None, None, False], labels))
    assert 0.0 < out["panel"]["kappa"] < 1.0
