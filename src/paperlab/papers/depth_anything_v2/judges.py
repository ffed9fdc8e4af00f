"""The claims' judges: measured figures -> (verdict, reason). Every goalpost is an argument, bound
to the constants of claims.py there (a `--set` cannot move it)."""

from __future__ import annotations

from collections.abc import Mapping

from paperlab.claims import Verdict


def powered(m: Mapping[str, float], key: str, bar: float) -> str | None:
    """Why the miniature is not powered (`m[key] < bar`), or None."""
    if m[key] < bar:
        return f"not powered: {key}={m[key]:.3f} < {bar}"
    return None


def teacher_powered(m: Mapping[str, float], teacher_bar: float, mirror_bar: float) -> str | None:
    if why := powered(m, "teacher_pair_acc", teacher_bar):
        return why
    if why := powered(m, "teacher_mirror_pair_acc", mirror_bar):
        return why + " (the teacher does not rank mirror pairs: it knows only the layout)"
    return None


def judge_real(
    m: Mapping[str, float], *, teacher_bar: float, mirror_bar: float
) -> tuple[Verdict, str]:
    if why := teacher_powered(m, teacher_bar, mirror_bar):
        return "inconclusive", why
    gap, b = m["pair_gap"], m["pair_band"]
    text = (
        f"pair acc real {m['pair_acc_real']:.3f} vs synthetic {m['pair_acc_synthetic']:.3f} "
        f"(gap {gap:+.3f}, band {b:.3f}); AbsRel gain {m['abs_rel_gain']:+.3f}, "
        f"delta1 gain {m['delta1_gain']:+.3f}"
    )
    if gap >= b and m["abs_rel_gain"] > 0 and m["delta1_gain"] > 0:
        return "holds", text
    if gap <= -b:
        return "fails", text
    return "inconclusive", text + " (mixed or within the band)"


def judge_gap(
    m: Mapping[str, float],
    *,
    key: str,
    band_key: str,
    power_key: str,
    power_bar: float,
    harm_bar: float | None = None,
) -> tuple[Verdict, str]:
    if why := powered(m, power_key, power_bar):
        return "inconclusive", why
    if harm_bar is not None and (why := powered(m, "noise_harm", harm_bar)):
        return "inconclusive", why + " (the label noise barely hurt)"
    gap, b = m[key], m[band_key]
    text = f"{key}={gap:+.4f}, band {b:.4f}"
    if gap >= b:
        return "holds", text
    return ("fails", text) if gap <= -b else ("inconclusive", text + " (within the band)")


def judge_student(
    m: Mapping[str, float],
    *,
    teacher_bar: float,
    mirror_bar: float,
    max_drop: float,
    min_speedup: float,
) -> tuple[Verdict, str]:
    if why := teacher_powered(m, teacher_bar, mirror_bar):
        return "inconclusive", why
    text = (
        f"drop {m['pair_acc_drop']:+.3f} (<= {max_drop}), "
        f"speed-up {m['speedup']:.2f}x (>= {min_speedup})"
    )
    ok = m["pair_acc_drop"] <= max_drop and m["speedup"] >= min_speedup
    return ("holds" if ok else "fails"), text
