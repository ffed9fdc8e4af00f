"""The claims' experiments: each reduces the per-seed results of
:func:`~paperlab.papers.narcan.runs.seed_results` (shared by the four claims, kept in the
disk cache) to the figures its criterion judges. Noise floors and tolerances are constants of
``claims.py``, passed in as arguments; a gap's band is 2 standard errors over seeds (paired by
seed), at least the floor.
"""

from __future__ import annotations

import statistics

import numpy as np

from paperlab.claims import RunContext
from paperlab.papers.narcan.plots import plot_arms, plot_canonicals, plot_videos
from paperlab.papers.narcan.runs import SeedResult, seed_results


def _values(runs: dict[int, SeedResult], key: str) -> np.ndarray:
    return np.array([r.figures[key] for r in runs.values()])


def _paired(m: dict[str, float], name: str, a: np.ndarray, b: np.ndarray, floor: float) -> None:
    """``<name>_gain`` = mean(a - b), ``<name>_band`` = max(2 s.e., floor), ``<name>_min``."""
    d = a - b
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")
    m[f"{name}_gain"] = float(d.mean())
    m[f"{name}_band"] = max(2 * se, floor)
    m[f"{name}_min"] = float(d.min())


def _means(m: dict[str, float], runs: dict[int, SeedResult], keys: list[str]) -> None:
    for k in keys:
        v = _values(runs, k)
        m[k], m[f"{k}_std"] = float(v.mean()), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


# ---------------------------------------------------------------------------------------------
# (1) hybrid deformation vs homography only


def run_hybrid(ctx: RunContext, *, min_db: float) -> dict[str, float]:
    runs = seed_results(ctx)
    m: dict[str, float] = {"seeds": float(len(runs))}
    keys = [f"{a}_{k}" for a in ("hybrid", "homography") for k in ("recon_psnr", "canonical_psnr")]
    _means(m, runs, keys)
    for k in ("recon_psnr", "canonical_psnr"):
        _paired(m, k, _values(runs, f"hybrid_{k}"), _values(runs, f"homography_{k}"), min_db)
    plot_arms(ctx, runs, ["homography", "hybrid"], file="hybrid_vs_homography.png")
    plot_canonicals(ctx, runs[min(runs)], file="canonicals.png")
    return m


# ---------------------------------------------------------------------------------------------
# (2) with vs without the diffusion prior


def run_prior(ctx: RunContext, *, min_db: float) -> dict[str, float]:
    runs = seed_results(ctx)
    m: dict[str, float] = {"seeds": float(len(runs))}
    _means(m, runs, ["power_before", "power_after"])
    m["power_gain"] = m["power_after"] - m["power_before"]
    m["power_min_gain"] = float(
        (_values(runs, "power_after") - _values(runs, "power_before")).min()
    )
    _means(m, runs, ["prior_ceiling"])
    headroom = _values(runs, "prior_ceiling") - _values(runs, "hybrid_canonical_psnr")
    m["ceiling_headroom_min"] = float(headroom.min())  # > 0: targets can beat the plain fit
    keys = [
        f"{a}_{k}"
        for a in ("narcan", "hybrid")
        for k in ("region_psnr", "canonical_psnr", "recon_psnr")
    ]
    _means(m, runs, keys)
    for k in ("region_psnr", "canonical_psnr"):
        _paired(m, k, _values(runs, f"narcan_{k}"), _values(runs, f"hybrid_{k}"), min_db)
    m["region_seen_fraction"] = float(_values(runs, "narcan_region_seen_fraction").mean())
    plot_arms(ctx, runs, ["hybrid", "narcan"], file="prior_vs_none.png")
    return m


# ---------------------------------------------------------------------------------------------
# (3) the update schedule vs refreshing at every step


def run_schedule(ctx: RunContext, *, min_db: float) -> dict[str, float]:
    runs = seed_results(ctx)
    m: dict[str, float] = {"seeds": float(len(runs))}
    keys = [
        f"{a}_{k}"
        for a in ("narcan", "every_step")
        for k in ("canonical_psnr", "region_psnr", "recon_psnr", "prior_calls", "wall_seconds")
    ]
    _means(m, runs, keys)
    for k in ("canonical_psnr", "region_psnr"):
        _paired(m, k, _values(runs, f"narcan_{k}"), _values(runs, f"every_step_{k}"), min_db)
    m["calls_ratio"] = m["every_step_prior_calls"] / m["narcan_prior_calls"]
    for kind in ("wall", "cpu"):
        ratios = _values(runs, f"every_step_{kind}_seconds") / _values(
            runs, f"narcan_{kind}_seconds"
        )
        m[f"{kind}_ratio"] = float(statistics.median(ratios.tolist()))
    prior_share = _values(runs, "every_step_prior_seconds") / _values(
        runs, "every_step_wall_seconds"
    )
    m["every_step_prior_share"] = float(prior_share.mean())
    plot_arms(ctx, runs, ["narcan", "every_step"], file="schedule_vs_every_step.png")
    return m


# ---------------------------------------------------------------------------------------------
# (4) temporal consistency of edits: warping and interpolation errors


def run_consistency(ctx: RunContext) -> dict[str, float]:
    runs = seed_results(ctx)
    m: dict[str, float] = {"seeds": float(len(runs))}
    names = ("input", "narcan", "homography", "per_frame")
    _means(m, runs, [f"{e}_{n}" for e in ("warp", "interp") for n in names])
    for e in ("warp", "interp"):
        d = _values(runs, f"{e}_per_frame") - _values(runs, f"{e}_narcan")
        m[f"{e}_margin_min"] = float(d.min())  # per-frame minus NaRCan, worst seed
    plot_videos(ctx, runs[min(runs)], file="edits.png")
    return m
