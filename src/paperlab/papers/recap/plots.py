"""The claims' figures: scenes with their web caption and recaption; R@1 and zero-shot
accuracy against the mixing ratio p."""

from __future__ import annotations

from typing import Any

import numpy as np

from paperlab.claims import RunContext
from paperlab.core.data.images import image_grid


def plot_examples(ctx: RunContext, w: dict[str, Any], r: dict[str, Any], n: int = 4) -> None:
    """A few pool scenes, each with its web caption and its recaption."""
    fig, axes = ctx.figure(n, 1, figsize=(7.5, 1.1 * n))
    for i, ax in enumerate(axes):
        ax.imshow(image_grid(w["pool_images"][i : i + 1], nrow=1), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(1.15, 0.65, f"web: {w['web'][i]}", transform=ax.transAxes, fontsize=8)
        text = "".join(ch if ch.isprintable() else "?" for ch in r["pool_recaptions"][i])
        ax.text(1.15, 0.2, f"recap: {text}", transform=ax.transAxes, fontsize=6.5, wrap=True)
    ctx.save_figure(fig, "recaptions.png")


def plot_mixture(ctx: RunContext, runs: dict[float, list[dict[str, Any]]]) -> None:
    """R@1 (short, long queries, their mean) and zero-shot accuracy per mixing ratio p: the
    mean over the training seeds, each seed as a dot (the spread)."""
    ps = sorted(runs)
    fig, ax = ctx.figure(figsize=(5.2, 3.4))
    for key, label in (
        ("short_r1", "R@1 short queries"),
        ("long_r1", "R@1 long queries"),
        ("avg_r1", "R@1 mean"),
        ("zero_shot", "zero-shot subject acc."),
    ):
        line = ax.plot(ps, [np.mean([r[key] for r in runs[p]]) for p in ps], label=label)
        for p in ps:
            ys = [r[key] for r in runs[p]]
            ax.scatter([p] * len(ys), ys, s=10, color=line[0].get_color())
    ax.set_xlabel("p = share of original (web) captions")
    ax.set_ylabel("held-out scenes")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("tiny CLIP on recaptioned scenes", fontsize=10)
    ctx.save_figure(fig, "mixture.png")
