"""core.stats against hand-computed values: chi-square, rank correlations with ties, kappa."""

from __future__ import annotations

import math

import numpy as np
import pytest

from paperlab.core.stats import (
    chain_marginals,
    chi_square_goodness_of_fit,
    chi_square_homogeneity,
    cohen_kappa,
    kendall_tau,
    majority,
    paired_bootstrap,
    pearson,
    spearman,
)


def test_chi_square_matches_the_textbook_formula():
    a = [0] * 30 + [1] * 20 + [2] * 10
    b = [0] * 10 + [1] * 20 + [2] * 30
    stat, dof, p = chi_square_homogeneity(a, b, categories=4)  # category 3 empty: dropped
    table = np.array([[30, 20, 10], [10, 20, 30]], dtype=float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    assert stat == pytest.approx(((table - expected) ** 2 / expected).sum())
    assert dof == 2 and p < 1e-4


def test_chi_square_same_distribution_and_degenerate_cases():
    rng = np.random.default_rng(0)
    _, _, p = chi_square_homogeneity(rng.integers(0, 5, 4000), rng.integers(0, 5, 4000), 5)
    assert p > 0.01
    assert chi_square_homogeneity([1, 1], [1], 3) == (0.0, 0, 1.0)
    with pytest.raises(ValueError, match="outside"):
        chi_square_homogeneity([0, 3], [0], 3)
    with pytest.raises(ValueError, match="non-empty"):
        chi_square_homogeneity([], [0], 3)


def test_spearman_gives_ties_their_average_rank():
    x, y = [1, 2, 2, 3], [1, 2, 3, 4]
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4])
    assert spearman(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2], [1, 2, 3])


def test_kendall_tau_b_and_pearson():
    # tau-b with one tie in x: (C - D) / sqrt((n0 - n1)(n0 - n2)) = 5 / sqrt(5 * 6)
    assert kendall_tau([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))
    assert pearson([0, 1, 2], [1, 3, 5]) == pytest.approx(1.0)
    assert math.isnan(pearson([2, 2], [1, 3]))


def test_cohen_kappa_against_the_definition():
    a = ["y", "y", "n", "n", "y", "n", "y", "y"]
    b = ["y", "n", "n", "n", "y", "y", "y", "y"]
    po = np.mean([u == v for u, v in zip(a, b, strict=True)])
    pe = sum(a.count(c) / 8 * b.count(c) / 8 for c in "yn")
    assert cohen_kappa(a, b) == pytest.approx((po - pe) / (1 - pe))
    assert cohen_kappa([1, 1, 1], [1, 1, 1]) == 1.0  # one label throughout: convention
    assert cohen_kappa([1, None, 2], [1, None, 2]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal length"):
        cohen_kappa([1], [1, 2])


def test_majority_and_bootstrap():
    assert majority([None, "b", "a", "a", "b"]) == "b"  # tie: first seen
    assert majority([None]) is None
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 1.0, 200)
    mean, lo, hi = paired_bootstrap(a, a - 0.5, seed=0)
    assert mean == pytest.approx(0.5) and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    mean, lo, hi = paired_bootstrap(a, np.zeros(200), seed=0)
    assert lo < mean < hi and lo > 0.7


def test_chi_square_goodness_of_fit_matches_scipy_and_pools_small_categories():
    from scipy.stats import chisquare

    samples = [0] * 30 + [1] * 50 + [2] * 20 + [3] * 25
    probs = [0.2, 0.4, 0.2, 0.2]
    ref = chisquare([30, 50, 20, 25], [p * 125 for p in probs])
    assert chi_square_goodness_of_fit(samples, probs) == pytest.approx(ref.pvalue, rel=1e-6)
    # categories expecting < 5 are pooled: 0.01 and 0.02 of 100 samples become one category
    pooled = chisquare([60, 37, 3], [60.0, 37.0, 3.0])
    p = chi_square_goodness_of_fit([0] * 60 + [1] * 37 + [2, 2, 3], [0.6, 0.37, 0.01, 0.02])
    assert p == pytest.approx(pooled.pvalue)
    assert chi_square_goodness_of_fit([0, 3], [0.5, 0.5, 0.0, 0.0]) == 0.0  # outside support
    with pytest.raises(ValueError, match="samples"):
        chi_square_goodness_of_fit([5], [0.5, 0.5])


def test_chain_marginals_of_a_two_token_chain():
    import torch

    def next_probs(seqs):  # repeat the last token with 0.8, switch with 0.2
        last = seqs[:, -1]
        probs = torch.full((len(seqs), 2), 0.2)
        probs[torch.arange(len(seqs)), last] = 0.8
        return probs

    first, second = chain_marginals(next_probs, [0], vocab=2, steps=2)
    assert first.tolist() == pytest.approx([0.8, 0.2])
    assert second.tolist() == pytest.approx([0.8 * 0.8 + 0.2 * 0.2, 2 * 0.8 * 0.2])
