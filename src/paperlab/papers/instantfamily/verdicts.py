"""The judges of InstantFamily's claims: measured figures -> (verdict, reason). Thresholds are
constants of ``claims.py`` passed in; gaps are judged against 2 standard errors of the paired
per-box differences (at least a floor), measured in ``experiments.py``."""

from __future__ import annotations

from collections.abc import Mapping

from paperlab.core.criteria import Verdict


def powered(m: Mapping[str, float], *, min_accuracy: float, min_gap: float) -> tuple[bool, str]:
    """The judge tells new identities apart, and the generator draws the given person."""
    text = (
        f"judge top-1 {m['judge_accuracy']:.2f} on new identities (chance "
        f"{m['chance_accuracy']:.2f}); 1-person sim - random-ID baseline "
        f"{m['generation_gap']:+.3f} (real faces {m['real_gap']:+.3f})"
    )
    if m["judge_accuracy"] < min_accuracy:
        return False, f"{text}: not powered (judge below {min_accuracy:.2f})"
    if m["generation_gap"] < min_gap:
        return False, f"{text}: not powered (the generator's faces are not the given people)"
    return True, text


def judge_masked(m: Mapping[str, float], **power: float) -> tuple[Verdict, str]:
    ok, text = powered(m, **power)
    if not ok:
        return "inconclusive", text
    gain, band = m["sim_gain"], m["sim_band"]
    drop, mband = m["mixing_drop"], m["mixing_band"]
    text += (
        f"; 2 people, masked - unmasked: sim {gain:+.3f} (band {band:.3f}), mixing "
        f"{m['masked_mixing']:.2f} vs {m['unmasked_mixing']:.2f} (band {mband:.2f})"
    )
    if gain >= band and drop >= mband:
        return "holds", text
    if gain <= -band or drop <= -mband:
        return "fails", text
    return "inconclusive", text + " -> within noise"


def judge_local(m: Mapping[str, float], **power: float) -> tuple[Verdict, str]:
    ok, text = powered(m, **power)
    if not ok:
        return "inconclusive", text
    gain, band = m["sim_gain"], m["sim_band"]
    text += f"; 1-2 people, global+local - global only: sim {gain:+.3f} (band {band:.3f})"
    if gain >= band:
        return "holds", text
    if gain <= -band:
        return "fails", text
    return "inconclusive", text + " -> within noise"


def judge_more(
    m: Mapping[str, float], *, min_retained: float, max_mix_share: float, **power: float
) -> tuple[Verdict, str]:
    ok, text = powered(m, **power)
    if not ok:
        return "inconclusive", text
    text += "; sim - random: " + ", ".join(
        f"{k} people {m[f'k{k}_gap']:+.3f} (mixing {m[f'k{k}_mixing']:.2f}, "
        f"chance {m[f'k{k}_chance_mixing']:.2f})"
        for k in (2, 3, 4)
    )
    text += f"; 3-4 people keep {m['retained']:.0%} of the 2-person gap"
    above = all(m[f"k{k}_gap"] >= m[f"k{k}_band"] for k in (3, 4))
    unmixed = all(m[f"k{k}_mixing"] <= max_mix_share * m[f"k{k}_chance_mixing"] for k in (3, 4))
    if above and unmixed and m["retained"] >= min_retained:
        return "holds", text
    return "fails", text
