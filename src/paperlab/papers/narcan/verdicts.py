"""The judges of NaRCan's claims: measured figures -> (verdict, reason). The thresholds are
constants of ``claims.py`` (passed in where a judge needs one); gaps are judged against the
paired-seed band (2 standard errors) that ``experiments.py`` measures."""

from __future__ import annotations

from collections.abc import Mapping

from paperlab.core.criteria import Verdict


def _gain(m: Mapping[str, float], k: str) -> str:
    return (
        f"{k} {m[f'{k}_gain']:+.2f} dB (band {m[f'{k}_band']:.2f}, worst seed {m[f'{k}_min']:+.2f})"
    )


def judge_hybrid(m: Mapping[str, float]) -> tuple[Verdict, str]:
    keys = ("recon_psnr", "canonical_psnr")
    text = "hybrid - homography only: " + "; ".join(_gain(m, k) for k in keys)
    if any(m[f"{k}_gain"] <= -m[f"{k}_band"] for k in keys):
        return "fails", text
    if all(m[f"{k}_gain"] >= m[f"{k}_band"] for k in keys):
        return "holds", text
    return "inconclusive", text + " -> within noise"


def judge_prior(m: Mapping[str, float]) -> tuple[Verdict, str]:
    before, after = m["power_before"], m["power_after"]
    power = f"power: SDEdit takes a damaged canonical {before:.2f} -> {after:.2f} dB"
    if m["power_min_gain"] <= 0:
        return "inconclusive", power + " (not toward the truth on every seed: not powered)"
    text = f"{power}; prior - none: {_gain(m, 'region_psnr')}; {_gain(m, 'canonical_psnr')}"
    if m["ceiling_headroom_min"] <= 0:
        ceiling, plain = m["prior_ceiling"], m["hybrid_canonical_psnr"]
        return "inconclusive", (
            f"{text}; not powered: the prior's refinement of the TRUE canonical is "
            f"{ceiling:.2f} dB from it, below the plain fit's {plain:.2f} dB, so its targets "
            "cannot pull the canonical closer to the truth"
        )
    gain, band = m["region_psnr_gain"], m["region_psnr_band"]
    if gain <= -band:
        return "fails", text
    return ("holds" if gain >= band else "inconclusive"), text


def judge_schedule(
    m: Mapping[str, float], *, same_db: float, min_calls_ratio: float
) -> tuple[Verdict, str]:
    gap = m["canonical_psnr_gain"]
    text = (
        f"scheduled - every step: canonical {gap:+.2f} dB, region {m['region_psnr_gain']:+.2f} dB; "
        f"diffusion calls {m['calls_ratio']:.1f}x fewer, wall time {m['wall_ratio']:.2f}x, "
        f"CPU {m['cpu_ratio']:.2f}x"
    )
    if gap <= -same_db - m["canonical_psnr_band"] or m["wall_ratio"] <= 1.0:
        return "fails", text
    if gap >= -same_db and m["calls_ratio"] >= min_calls_ratio:
        return "holds", text
    return "inconclusive", text


def judge_consistency(m: Mapping[str, float]) -> tuple[Verdict, str]:
    text = (
        f"warping error x1000: NaRCan {m['warp_narcan']:.2f} vs per frame "
        f"{m['warp_per_frame']:.2f} "
        f"(input {m['warp_input']:.2f}); interpolation error: {m['interp_narcan']:.2f} vs "
        f"{m['interp_per_frame']:.2f} (input {m['interp_input']:.2f})"
    )
    if m["warp_margin_min"] > 0 and m["interp_margin_min"] > 0:
        return "holds", text
    if m["warp_narcan"] >= m["warp_per_frame"] or m["interp_narcan"] >= m["interp_per_frame"]:
        return "fails", text
    return "inconclusive", text + " -> lower on average, not on every seed"
