"""The claims' figures: the canonical images of the arms next to the truth, per-arm PSNR bars,
and the edited videos (matplotlib's Agg canvas through ``ctx.figure``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from paperlab.claims import RunContext
from paperlab.core.data.images import image_grid

LABELS = {
    "homography": "homography only",
    "hybrid": "hybrid, no prior",
    "narcan": "NaRCan (scheduled prior)",
    "every_step": "prior at every step",
}


def _show(ax: Any, images: list[torch.Tensor], title: str) -> None:
    size = max(max(i.shape[-2:]) for i in images)
    same = [
        torch.nn.functional.interpolate(i[None], size=(size, size), mode="nearest")[0]
        for i in images
    ]
    ax.imshow(image_grid((torch.stack(same) + 1) / 2, nrow=len(same)), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_canonicals(ctx: RunContext, run: Any, *, file: str) -> None:
    """The true canonical and every arm's (first seed; each in its own frame and region)."""
    names = ["truth"] + [f"canonical_{a}" for a in LABELS]
    fig, ax = ctx.figure(figsize=(10, 2.6))
    _show(ax, [run.images[n] for n in names], "truth | " + " | ".join(LABELS.values()))
    ctx.save_figure(fig, file)


def plot_arms(ctx: RunContext, runs: dict[int, Any], arms: list[str], *, file: str) -> None:
    """Per-arm reconstruction, seen-canonical and region PSNR (mean and seeds' dots)."""
    keys = [
        ("recon_psnr", "frames"),
        ("canonical_psnr", "canonical (seen)"),
        ("region_psnr", "canonical (region)"),
    ]
    fig, axes = ctx.figure(1, len(keys), figsize=(3.2 * len(keys), 3.0))
    for ax, (key, title) in zip(axes, keys, strict=True):
        for i, arm in enumerate(arms):
            v = np.array([r.figures[f"{arm}_{key}"] for r in runs.values()])
            ax.bar(i, v.mean(), color=f"C{i}")
            ax.plot([i] * len(v), v, "k.", ms=4)
        ax.set_xticks(range(len(arms)), [LABELS[a] for a in arms], fontsize=7, rotation=10)
        lo = min(r.figures[f"{a}_{key}"] for r in runs.values() for a in arms)
        ax.set_ylim(max(0.0, lo - 3), None)
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(title, fontsize=9)
    ctx.save_figure(fig, file)


def plot_videos(ctx: RunContext, run: Any, *, file: str) -> None:
    """Frames of the input and of each edited video (first seed)."""
    rows = [
        ("video_input", "input"),
        ("video_narcan", "NaRCan: canonical edited once"),
        ("video_homography", "homography only: canonical edited once"),
        ("video_per_frame", "the same edit per frame"),
    ]
    fig, axes = ctx.figure(len(rows), 1, figsize=(7, 1.5 * len(rows)))
    for ax, (key, title) in zip(axes, rows, strict=True):
        _show(ax, list(run.images[key]), title)
    ctx.save_figure(fig, file)
