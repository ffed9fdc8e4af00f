"""The claims' experiments: each asks :func:`~paperlab.papers.pit.runs.ensure_runs` for the
trainings it needs (shared between claims and kept in the disk cache) and reduces their
held-out accuracies over the seeds to the figures its criterion judges.

The criteria's noise floors (``min_band``, ``pos_tol``) are constants of ``claims.py``, passed
in as plain arguments: a gap's band is 2 standard errors, at least that floor.
"""

from __future__ import annotations

import numpy as np

from paperlab.claims import RunContext
from paperlab.papers.pit.model import POS_EMBEDS, model_name
from paperlab.papers.pit.plots import plot_bars, plot_mae
from paperlab.papers.pit.runs import RunSpec, accuracies, ensure_runs, mean_std, seeds


def band(a: np.ndarray, b: np.ndarray, *, paired: bool, floor: float) -> float:
    """2 standard errors of mean(a) - mean(b), at least ``floor``; paired by seed or not."""
    n = len(a)
    if paired:
        se = float(np.std(a - b, ddof=1)) / np.sqrt(n)
    else:
        se = float(np.sqrt(np.var(a, ddof=1) / n + np.var(b, ddof=1) / len(b)))
    return max(2.0 * se, floor)


def record(m: dict[str, float], name: str, accs: np.ndarray) -> None:
    """``acc_<name>`` and ``std_<name>``: mean and std over the seeds."""
    m[f"acc_{name}"], m[f"std_{name}"] = mean_std(accs)


def supervised_specs(ctx: RunContext, dataset: str, **kw: bool) -> list[RunSpec]:
    """PiT and every patch ViT of the config on ``dataset``, one spec per seed."""
    sizes = (1, *ctx.config.patch_sizes)
    return [RunSpec(dataset, p, s, **kw) for p in sizes for s in seeds(ctx)]


# ---------------------------------------------------------------------------------------------
# (1) PiT vs ViT-p2 / ViT-p4 at equal width and depth


def run_pixels_vs_patches(ctx: RunContext, *, min_band: float) -> dict[str, float]:
    cfg = ctx.config
    specs = [s for d in cfg.datasets for s in supervised_specs(ctx, d)]
    runs = ensure_runs(ctx, specs)
    m: dict[str, float] = {}
    for d in cfg.datasets:
        pit = accuracies(ctx, runs, dataset=d, patch_size=1)
        record(m, f"{d}_pit", pit)
        patches = {p: accuracies(ctx, runs, dataset=d, patch_size=p) for p in cfg.patch_sizes}
        for p, accs in patches.items():
            record(m, f"{d}_vit_p{p}", accs)
        best = max(patches, key=lambda p: patches[p].mean())
        m[f"{d}_best_patch"] = float(best)
        m[f"{d}_gap"] = float(pit.mean() - patches[best].mean())
        m[f"{d}_band"] = band(pit, patches[best], paired=False, floor=min_band)
    m["worst_gap"] = min(m[f"{d}_gap"] for d in cfg.datasets)
    m["worst_gap_over_band"] = min(m[f"{d}_gap"] / m[f"{d}_band"] for d in cfg.datasets)
    names = ["pit"] + [f"vit_p{p}" for p in cfg.patch_sizes]
    bars = {d: [(n, f"{d}_{n}") for n in names] for d in cfg.datasets}
    plot_bars(
        ctx, m, bars, title="PiT vs patch ViT at equal width/depth", file="pixels_vs_patches.png"
    )
    return m


# ---------------------------------------------------------------------------------------------
# (2) a fixed pixel permutation


def run_pixel_permutation(ctx: RunContext, *, min_band: float) -> dict[str, float]:
    cfg = ctx.config
    d = cfg.perm_dataset
    plain = supervised_specs(ctx, d)
    runs = ensure_runs(ctx, plain + supervised_specs(ctx, d, permuted=True))
    m: dict[str, float] = {}
    for p in (1, *cfg.patch_sizes):
        name = model_name(p)
        a = accuracies(ctx, runs, dataset=d, patch_size=p)
        b = accuracies(ctx, runs, dataset=d, patch_size=p, permuted=True)
        record(m, name, a)
        record(m, f"{name}_perm", b)
        m[f"drop_{name}"] = float(a.mean() - b.mean())
        m[f"band_{name}"] = band(a, b, paired=True, floor=min_band)
    m["min_vit_drop"] = min(m[f"drop_vit_p{p}"] for p in cfg.patch_sizes)
    names = [model_name(p) for p in (1, *cfg.patch_sizes)]
    bars = {
        g: [(n, n + suffix) for n in names]
        for g, suffix in (("original pixels", ""), ("permuted pixels", "_perm"))
    }
    plot_bars(
        ctx, m, bars, title=f"{d}: one fixed random pixel permutation", file="pixel_permutation.png"
    )
    return m


# ---------------------------------------------------------------------------------------------
# (3) position embeddings


def run_position_embedding(ctx: RunContext, *, min_band: float, pos_tol: float) -> dict[str, float]:
    cfg = ctx.config
    d, p = cfg.pos_dataset, cfg.patch_sizes[0]
    specs = [RunSpec(d, 1, s, pos_embed=pe) for pe in POS_EMBEDS for s in seeds(ctx)]
    specs += [RunSpec(d, p, s, pos_embed=pe) for pe in ("learned", "none") for s in seeds(ctx)]
    runs = ensure_runs(ctx, specs)
    m: dict[str, float] = {}
    accs = {}
    for spec in specs:
        key = (spec.patch_size, spec.pos_embed)
        if key not in accs:
            accs[key] = accuracies(ctx, runs, dataset=d, patch_size=key[0], pos_embed=key[1])
            record(m, model_name(*key), accs[key])
    learned, sincos = accs[(1, "learned")], accs[(1, "sincos")]
    m["learned_minus_sincos"] = float(learned.mean() - sincos.mean())
    m["learned_sincos_band"] = max(band(learned, sincos, paired=False, floor=min_band), pos_tol)
    m["pit_none_drop"] = float(learned.mean() - accs[(1, "none")].mean())
    m[f"vit_p{p}_none_drop"] = float(accs[(p, "learned")].mean() - accs[(p, "none")].mean())
    bars = {
        "PiT": [(pe, model_name(1, pe)) for pe in POS_EMBEDS],
        f"ViT-p{p}": [(pe, model_name(p, pe)) for pe in ("learned", "none")],
    }
    plot_bars(ctx, m, bars, title=f"{d}: position embeddings", file="position_embedding.png")
    return m


# ---------------------------------------------------------------------------------------------
# (4) MAE pre-training


def run_mae(ctx: RunContext, *, min_band: float) -> dict[str, float]:
    d = ctx.config.mae_dataset
    specs = [RunSpec(d, 1, s, mae=mae) for mae in (False, True) for s in seeds(ctx)]
    runs = ensure_runs(ctx, specs)
    scratch = accuracies(ctx, runs, dataset=d, patch_size=1)
    mae = accuracies(ctx, runs, dataset=d, patch_size=1, mae=True)
    m: dict[str, float] = {}
    record(m, "pit", scratch)
    record(m, "pit_mae", mae)
    m["gain"] = float(mae.mean() - scratch.mean())
    m["band"] = band(mae, scratch, paired=True, floor=min_band)
    m["mae_loss"] = float(np.mean([runs[s].mae_loss for s in specs if s.mae]))
    plot_mae(ctx, m, runs[RunSpec(d, 1, ctx.seed, mae=True)], d)
    return m
