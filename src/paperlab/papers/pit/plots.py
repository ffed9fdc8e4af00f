"""The claims' figures: grouped accuracy bars with seed error bars, MAE reconstructions.
Saved as artifacts of each result (shown in the HTML report)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from paperlab.claims import RunContext
from paperlab.core.data.images import image_grid
from paperlab.papers.pit.runs import RunResult, mae_model, shared_data


def plot_bars(
    ctx: RunContext,
    m: Mapping[str, float],
    bars: Mapping[str, list[tuple[str, str]]],
    *,
    title: str,
    file: str,
) -> None:
    """One group of bars per key of ``bars``; each bar ``(label, base)`` shows
    ``m["acc_" + base]`` with an error bar of ``m["std_" + base]`` (std over seeds)."""
    fig, ax = ctx.figure(figsize=(1.2 + 0.55 * sum(len(b) for b in bars.values()), 3.6))
    x, ticks, labels = 0.0, [], []
    for g, (group, items) in enumerate(bars.items()):
        for label, base in items:
            colour = f"C{len(ticks) % len(items)}"
            ax.bar(x, m[f"acc_{base}"], yerr=m[f"std_{base}"], capsize=3, color=colour)
            ax.annotate(
                f"{m[f'acc_{base}']:.2f}",
                (x, m[f"acc_{base}"]),
                ha="center",
                textcoords="offset points",
                xytext=(0, 6),
                fontsize=7,
            )
            ticks.append(x)
            labels.append(label)
            x += 1.0
        centre = x - 1.0 - (len(items) - 1) / 2
        ax.text(
            centre,
            -0.16,
            group,
            transform=ax.get_xaxis_transform(),
            ha="center",
            fontsize=9,
            fontweight="bold",
        )
        x += 0.6 if g < len(bars) - 1 else 0.0
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_ylabel(f"held-out accuracy (mean ± std, {ctx.config.seeds} seeds)")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10)
    ctx.save_figure(fig, file)


def plot_mae(ctx: RunContext, m: Mapping[str, float], run: RunResult, dataset: str) -> None:
    """Scratch vs MAE fine-tuning bars, and held-out images / 75% masked / reconstructed."""
    _, test = shared_data(ctx, dataset)
    mae = mae_model(ctx, run, dataset)
    x = test.images[:8]
    shown, filled = (t.cpu() for t in mae.reconstruct(x, seed=ctx.seed))
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(9, 3.4), width_ratios=(1, 2.2))
    for i, base in enumerate(("pit", "pit_mae")):
        a1.bar(i, m[f"acc_{base}"], yerr=m[f"std_{base}"], capsize=3, color=f"C{i}")
    a1.set_xticks([0, 1], ["from scratch", "MAE + fine-tune"], fontsize=8)
    a1.set_ylabel(f"held-out accuracy (mean ± std, {ctx.config.seeds} seeds)")
    a1.set_ylim(0, 1.05)
    a1.set_title(f"PiT on {dataset}: gain {m['gain']:+.3f}", fontsize=10)
    a2.imshow(image_grid(torch.cat([x, shown, filled]), nrow=8), interpolation="nearest")
    size = x.shape[-1] + 1
    a2.set_yticks(
        [1 + size * i + size / 2 for i in range(3)],
        ["input", f"{mae.mask_ratio:.0%} masked", "MAE output"],
        fontsize=8,
    )
    a2.set_xticks([])
    a2.set_title(f"pixel-token MAE (masked MSE {m['mae_loss']:.4f})", fontsize=10)
    ctx.save_figure(fig, "mae.png")
