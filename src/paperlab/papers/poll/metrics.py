"""Agreement metrics PoLL reports (Verga et al. 2024, arXiv 2404.18796, Sec. 4).

- `cohen_kappa`: agreement of a judge (or the panel) with human correctness labels, corrected
  for chance (Sec. 4.1, the paper's main QA metric);
- `kendall_tau` (tau-b) and `pearson`: agreement of two system rankings, e.g. the panel's vs
  the human leaderboard on Chatbot Arena Hard (Sec. 4.2);
- `accuracy`: plain agreement rate.

Pure Python / NumPy, no SciPy: the tests check these against `scipy.stats` and
`sklearn.metrics` on random inputs with ties.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np


def _same_length(a: Sequence, b: Sequence, what: str) -> int:
    if len(a) != len(b):
        raise ValueError(f"{what}: sequences differ in length ({len(a)} vs {len(b)})")
    if not a:
        raise ValueError(f"{what}: empty sequences")
    return len(a)


def accuracy(predictions: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Fraction of positions where the prediction equals the label. A None prediction (a vote
    that stayed unparseable) never equals a bool label, so it counts as a miss."""
    n = _same_length(predictions, labels, "accuracy")
    return sum(p == y for p, y in zip(predictions, labels, strict=True)) / n


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' labels: (p_o - p_e) / (1 - p_e), where p_o is the observed
    agreement and p_e the agreement expected if both drew labels independently from their own
    marginals. Any hashable labels; None is just another label. When p_e == 1 (both raters
    always give the same single label) kappa is undefined; we return 1.0 if they agree
    everywhere (they then always do) and 0.0 otherwise."""
    n = _same_length(a, b, "cohen_kappa")
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[label] * count_b[label] for label in count_a) / (n * n)
    if math.isclose(expected, 1.0):
        return 1.0 if math.isclose(observed, 1.0) else 0.0
    return (observed - expected) / (1.0 - expected)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b, which accounts for ties: sum over pairs of sign(dx) * sign(dy), divided
    by sqrt(#pairs untied in x * #pairs untied in y). nan when either side is constant (or
    there is a single item). O(n^2) time, O(n) memory: meant for rankings of systems."""
    n = _same_length(x, y, "kendall_tau")
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    concordance, untied_x, untied_y = 0.0, 0, 0
    for i in range(n - 1):
        sx = np.sign(xs[i + 1 :] - xs[i])
        sy = np.sign(ys[i + 1 :] - ys[i])
        concordance += float(sx @ sy)
        untied_x += int(np.count_nonzero(sx))
        untied_y += int(np.count_nonzero(sy))
    if untied_x == 0 or untied_y == 0:
        return math.nan
    return concordance / math.sqrt(untied_x * untied_y)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's correlation coefficient; nan when either side is constant (no variance)."""
    _same_length(x, y, "pearson")
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if np.all(xs == xs[0]) or np.all(ys == ys[0]):
        return math.nan
    dx, dy = xs - xs.mean(), ys - ys.mean()
    denom = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return max(-1.0, min(1.0, float(dx @ dy) / denom))
