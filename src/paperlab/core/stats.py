"""Statistics shared by the claims, through scipy and scikit-learn where they exist: paired
bootstrap intervals, majority votes, two-sample and goodness-of-fit chi-square tests (with
the exact marginals of a sampling chain to test samplers against), rank correlations that
handle ties (Spearman, Kendall tau-b), Pearson, Cohen's kappa."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from paperlab.core.criteria import Criterion, Verdict, custom


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, n: int = 2000, level: float = 0.9, seed: int = 0
) -> tuple[float, float, float]:
    """mean(a - b) over paired items and its bootstrap `level` interval (low, high)."""
    if len(a) != len(b) or not len(a):
        raise ValueError("paired_bootstrap: need two non-empty sequences of equal length")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n, len(d)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(d.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def improves(diff_key: str, low_key: str, what: str) -> Criterion:
    """Holds when the interval of a paired difference lies above 0; fails when the difference
    itself is <= 0; inconclusive in between (positive, but the interval reaches 0)."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        diff, low = float(m[diff_key]), float(m[low_key])
        if low > 0:
            return "holds", f"{what}: +{diff:.3f}, 90% interval above 0 (low {low:.3f})"
        if diff <= 0:
            return "fails", f"{what}: {diff:+.3f} <= 0"
        return "inconclusive", f"{what}: +{diff:.3f} but the 90% interval reaches {low:.3f}"

    return custom(f"{diff_key} > 0 with its 90% bootstrap interval above 0", judge)


def majority(values: Sequence[Hashable | None]) -> Hashable | None:
    """The most common non-None value (ties: the one seen first), or None."""
    counts = Counter(v for v in values if v is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(v for v in values if v is not None and counts[v] == best)


def chi_square_homogeneity(
    a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray, categories: int
) -> tuple[float, int, float]:
    """Two-sample chi-square test that samples ``a`` and ``b`` (category ids in
    [0, categories)) come from one distribution: (statistic, degrees of freedom, p-value).
    Categories empty in both samples are dropped; one category left gives (0, 0, 1)."""
    from scipy.stats import chi2_contingency

    a, b = np.asarray(a, dtype=np.int64).ravel(), np.asarray(b, dtype=np.int64).ravel()
    if not len(a) or not len(b):
        raise ValueError("chi_square_homogeneity: both samples must be non-empty")
    for name, x in (("a", a), ("b", b)):
        if x.min() < 0 or x.max() >= categories:
            raise ValueError(f"chi_square_homogeneity: {name} has ids outside [0, {categories})")
    table = np.stack([np.bincount(a, minlength=categories), np.bincount(b, minlength=categories)])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        return 0.0, 0, 1.0
    stat, p, dof, _ = chi2_contingency(table, correction=False)
    return float(stat), int(dof), float(p)


def chi_square_goodness_of_fit(
    samples: Sequence[int] | np.ndarray, probs: Sequence[float] | np.ndarray
) -> float:
    """p-value of Pearson's chi-square test that ``samples`` (category ids) follow ``probs``;
    categories expecting fewer than 5 samples are pooled into one, and a sample outside the
    support of ``probs`` gives 0 (the lossless-sampling tests of speculative decoding)."""
    from scipy.stats import chi2

    samples = np.asarray(samples, dtype=np.int64).ravel()
    probs = np.asarray(probs, dtype=np.float64).ravel()
    if not len(samples) or samples.min() < 0 or samples.max() >= len(probs):
        raise ValueError(f"samples: need ids in [0, {len(probs)}), got {len(samples)} samples")
    counts = np.bincount(samples, minlength=len(probs)).astype(np.float64)
    support = probs > 0
    if counts[~support].sum() > 0:
        return 0.0
    observed = counts[support]
    expected = probs[support] / probs[support].sum() * len(samples)
    small = expected < 5
    if small.any():
        observed = np.append(observed[~small], observed[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    if len(observed) < 2:
        return 1.0
    stat = float(((observed - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, len(observed) - 1))


def chain_marginals(next_probs: Any, prompt: Sequence[int], vocab: int, steps: int) -> list[Any]:
    """The exact marginal distribution (float64 tensors of ``vocab``) of each of the first
    ``steps`` tokens sampled after ``prompt`` from ``next_probs(seqs (B, t)) -> (B, vocab)``,
    by enumerating all vocab^(steps - 1) prefixes: the reference a sampler must match."""
    import torch

    if steps < 1 or vocab < 1:
        raise ValueError(f"steps={steps}, vocab={vocab}: both must be >= 1")
    seqs, weight, out = torch.tensor([list(prompt)]), torch.ones(1, dtype=torch.float64), []
    with torch.no_grad():
        for _ in range(steps):
            joint = next_probs(seqs).double() * weight[:, None]  # (B, vocab)
            out.append(joint.sum(0))
            following = torch.arange(vocab).repeat(seqs.shape[0])[:, None]
            seqs = torch.cat([seqs.repeat_interleave(vocab, 0), following], dim=1)
            weight = joint.reshape(-1)
    return out


def _pair(x: Sequence[float], y: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"{what}: need two 1-D sequences of equal length, got {x.shape}, {y.shape}"
        )
    return x, y


def _constant(x: np.ndarray) -> bool:
    return len(x) < 2 or bool(np.all(x == x[0]))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation, ties given their average rank (scipy); nan when either
    side is constant or has fewer than two items."""
    from scipy.stats import spearmanr

    x, y = _pair(x, y, "spearman")
    return math.nan if _constant(x) or _constant(y) else float(spearmanr(x, y).statistic)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (accounts for ties; scipy); nan when either side is constant."""
    from scipy.stats import kendalltau

    x, y = _pair(x, y, "kendall_tau")
    return math.nan if _constant(x) or _constant(y) else float(kendalltau(x, y).statistic)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r (scipy); nan when either side is constant."""
    from scipy.stats import pearsonr

    x, y = _pair(x, y, "pearson")
    return math.nan if _constant(x) or _constant(y) else float(pearsonr(x, y).statistic)


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' labels (scikit-learn), any hashable labels (None is just
    another label). Undefined when both raters give one and the same label throughout: 1.0
    then if they agree everywhere (they always do), as a convention."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) != len(b) or not len(a):
        raise ValueError("cohen_kappa: need two non-empty label sequences of equal length")
    labels = {v: i for i, v in enumerate(dict.fromkeys([*a, *b]))}
    ia, ib = [labels[v] for v in a], [labels[v] for v in b]
    if len(labels) == 1:
        return 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        k = float(cohen_kappa_score(ia, ib))
    return 0.0 if math.isnan(k) else k
