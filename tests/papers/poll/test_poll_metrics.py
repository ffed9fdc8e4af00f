"""PoLL metrics against SciPy / scikit-learn, and the pooling and bias helpers by hand."""

from __future__ import annotations

import math
import random

import pytest

from paperlab.papers.poll.metrics import accuracy, cohen_kappa, kendall_tau, pearson
from paperlab.papers.poll.poll import (
    average_pool,
    max_vote,
    ranking_agreement,
    self_preference_bias,
    system_ranking,
    system_scores,
)

stats = pytest.importorskip("scipy.stats")
sk_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", range(20))
def test_kendall_tau_matches_scipy_with_ties(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 60)
    x = [rng.randint(0, 5) for _ in range(n)]  # few distinct values: many ties
    y = [rng.choice([0.5, 1.0, 2.0, rng.random()]) for _ in range(n)]
    expected = stats.kendalltau(x, y, variant="b").statistic
    got = kendall_tau(x, y)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_pearson_matches_scipy(seed):
    rng = random.Random(seed)
    n = rng.randint(3, 60)
    x = [rng.randint(0, 4) for _ in range(n)]
    y = [xi * rng.random() + rng.gauss(0, 1) for xi in x]
    if len(set(x)) == 1:
        x[0] += 1
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_cohen_kappa_matches_sklearn(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 80)
    labels = [True, False] if seed % 2 else ["a", "b", "c"]
    a = [rng.choice(labels) for _ in range(n)]
    b = [x if rng.random() < 0.6 else rng.choice(labels) for x in a]
    if len(set(a)) == len(set(b)) == 1 and set(a) == set(b):
        b[0] = next(label for label in labels if label != a[0])
    assert cohen_kappa(a, b) == pytest.approx(sk_metrics.cohen_kappa_score(a, b), abs=1e-12)


def test_metric_edge_cases():
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
