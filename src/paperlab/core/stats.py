"""Small statistics shared by the claims: paired bootstrap intervals, majority votes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from paperlab.claims import Criterion, Verdict, custom


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
