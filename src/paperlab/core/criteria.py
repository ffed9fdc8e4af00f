"""Criteria: readable text + the function that turns measured figures into a verdict.

A criterion is code, fixed before the run: thresholds, margins and significance levels are
arguments written in a paper's ``claims.py``, never fields of its (``--set``-able) config.

    criterion = all_of(at_most("rmse_ratio", 1.0), at_least("wins", 3))
    verdict, why = criterion.judge({"rmse_ratio": 0.4, "wins": 4})   # ("holds", "...")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["holds", "fails", "inconclusive", "skipped"]
VERDICTS: tuple[str, ...] = ("holds", "fails", "inconclusive", "skipped")


@dataclass(frozen=True)
class Criterion:
    """A rule from measured figures to a verdict. ``text`` is what the report shows."""

    text: str
    judge_fn: Callable[[Mapping[str, float]], tuple[Verdict, str]]

    def judge(self, measured: Mapping[str, float]) -> tuple[Verdict, str]:
        try:
            return self.judge_fn(measured)
        except KeyError as e:  # a criterion naming a figure the run did not measure
            return "inconclusive", f"figure {e} was not measured"


def _cmp(key: str, op: str, value: float, margin: float | None) -> Criterion:
    """``key op value``; if ``margin`` is given, results within it of the threshold are
    ``inconclusive`` (too close to call); beyond it on the wrong side they ``fail``."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        x = float(m[key])
        if math.isnan(x):
            return "inconclusive", f"{key} is NaN"
        ok = x >= value if op == ">=" else x <= value
        if ok:
            return "holds", f"{key}={x:.4g} {op} {value:g}"
        if margin is not None and abs(x - value) <= margin:
            return "inconclusive", f"{key}={x:.4g} misses {op} {value:g} by less than {margin:g}"
        return "fails", f"{key}={x:.4g} not {op} {value:g}"

    band = f" (within {margin:g}: inconclusive)" if margin is not None else ""
    return Criterion(f"{key} {op} {value:g}{band}", judge)


def at_least(key: str, value: float, *, margin: float | None = None) -> Criterion:
    return _cmp(key, ">=", value, margin)


def at_most(key: str, value: float, *, margin: float | None = None) -> Criterion:
    return _cmp(key, "<=", value, margin)


def all_of(*criteria: Criterion) -> Criterion:
    """Holds if every part holds; fails if any part fails; otherwise inconclusive."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        results = [c.judge(m) for c in criteria]
        reasons = "; ".join(r for _, r in results)
        verdicts = {v for v, _ in results}
        if "fails" in verdicts:
            return "fails", reasons
        if verdicts == {"holds"}:
            return "holds", reasons
        return "inconclusive", reasons

    return Criterion(" and ".join(c.text for c in criteria), judge)


def custom(text: str, judge_fn: Callable[[Mapping[str, float]], tuple[Verdict, str]]) -> Criterion:
    return Criterion(text, judge_fn)


# A speed verdict measured while other programs kept the cores busy is not one: at or above
# this mean load of other runnable threads per core (core.timing.LoadMonitor), it is withheld.
MAX_OTHER_LOAD_PER_CORE = 0.5


def timing_guard(criterion: Criterion, *, load_key: str = "other_load_per_core") -> Criterion:
    """``criterion``, unless the machine was busy while the timing ran: then ``inconclusive``,
    saying what the verdict would have been. A NaN load (no /proc) does not withhold."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        verdict, reason = criterion.judge(m)
        load = float(m.get(load_key, float("nan")))
        if verdict in ("holds", "fails") and load >= MAX_OTHER_LOAD_PER_CORE:
            return "inconclusive", (
                f"machine busy while timing (other programs' load {load:.2f} per core >= "
                f"{MAX_OTHER_LOAD_PER_CORE:g}); would be {verdict}: {reason}"
            )
        return verdict, reason

    text = f"{criterion.text} (withheld if other load >= {MAX_OTHER_LOAD_PER_CORE:g}/core)"
    return Criterion(text, judge)
