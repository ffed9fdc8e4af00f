"""How much a generated text repeats itself: the powering figure of every decoding speed-up.

Speculative decoding on a loop accepts every draft, so a speed-up measured on text that a model
repeats says little about code or prose. Each decoding speed claim reports, next to the speed,
the quality of the continuations it decoded, and is judged only when they pass a floor:

    q = text_quality(continuations)           # {"distinct4": ..., "longest_repeat": ..., ...}
    criterion = quality_gated(at_least("speedup", 1.0), floor=0.5)

- ``distinct_n(seq, n)``: distinct n-grams / n-grams of one sequence (1.0: no n-gram twice;
  a loop of period p over T tokens gives about p / T). ``text_quality`` averages it over the
  continuations (each judged on its own: pooling would let two different loops look diverse).
- ``longest_repeated_span(seq)``: the length of the longest span that occurs at least twice
  (occurrences may overlap); ``text_quality`` reports the largest over the continuations, and
  it as a fraction of that continuation's length.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from paperlab.core.criteria import Criterion, Verdict

DISTINCT_N = 4  # the n of the distinct-n ratio the claims gate on


def _as_list(seq: Sequence[int] | str | bytes) -> list:
    if isinstance(seq, str):
        return list(seq.encode("utf-8"))
    return list(seq)


def distinct_n(seq: Sequence[int] | str | bytes, n: int = DISTINCT_N) -> float:
    """Distinct n-grams / all n-grams of one token sequence; NaN if it is shorter than n."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"distinct_n: n must be an integer >= 1, got {n!r}")
    tokens = _as_list(seq)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else math.nan


def longest_repeated_span(seq: Sequence[int] | str | bytes) -> int:
    """Length of the longest span that occurs at least twice in `seq` (overlaps allowed):
    0 if no token repeats. Binary search on the length (a repeat of length L contains one of
    every shorter length), each length checked with a set of spans."""
    tokens = _as_list(seq)

    def repeats(length: int) -> bool:
        seen: set[tuple] = set()
        for i in range(len(tokens) - length + 1):
            span = tuple(tokens[i : i + length])
            if span in seen:
                return True
            seen.add(span)
        return False

    low, high = 0, max(0, len(tokens) - 1)  # low repeats (0 trivially), high + 1 cannot
    while low < high:
        mid = (low + high + 1) // 2
        if repeats(mid):
            low = mid
        else:
            high = mid - 1
    return low


def text_quality(
    continuations: Sequence[Sequence[int] | str | bytes], n: int = DISTINCT_N
) -> dict[str, float]:
    """The quality figures of generated continuations (one per prompt):
    ``distinct{n}`` (mean over continuations of `distinct_n`; NaN-free: shorter ones are
    skipped, NaN if all are), ``distinct{n}_min``, ``longest_repeat`` (the largest
    `longest_repeated_span`) and ``longest_repeat_fraction`` (the largest span / length)."""
    if len(continuations) == 0:
        raise ValueError("text_quality: continuations must not be empty")
    seqs = [_as_list(c) for c in continuations]
    ratios = [r for r in (distinct_n(s, n) for s in seqs) if not math.isnan(r)]
    spans = [longest_repeated_span(s) for s in seqs]
    fractions = [span / len(s) for span, s in zip(spans, seqs, strict=True) if s]
    return {
        f"distinct{n}": statistics.fmean(ratios) if ratios else math.nan,
        f"distinct{n}_min": min(ratios) if ratios else math.nan,
        "longest_repeat": float(max(spans)),
        "longest_repeat_fraction": max(fractions) if fractions else math.nan,
    }


def quality_gated(
    criterion: Criterion, *, floor: float, key: str = f"distinct{DISTINCT_N}"
) -> Criterion:
    """`criterion`, judged only when the decoded text passes the quality floor
    (``measured[key] >= floor``); below it (or NaN) the claim is ``inconclusive`` with the
    figure: a speed-up on text that repeats itself is not powered."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        value = float(m[key])
        if math.isnan(value) or value < floor:
            verdict, reason = criterion.judge(m)
            return "inconclusive", (
                f"text below the quality floor ({key}={value:.2f} < {floor:g}): not powered; "
                f"would be {verdict}: {reason}"
            )
        verdict, reason = criterion.judge(m)
        return verdict, f"{reason}; text {key}={value:.2f} >= {floor:g}"

    return Criterion(f"{criterion.text}, judged if {key} >= {floor:g}", judge)
