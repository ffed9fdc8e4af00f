"""Plots of an activation profile: (a) sparsity per layer, (b) the power-law skew.

(b) is the cumulative plot of PowerInfer's Sec. 3.1 (arXiv 2312.12456): neurons sorted by
activation frequency, the cumulative share of activations against the share of neurons, the 80% line
(the share of neurons where each curve crosses it is `share_covering(0.8)`); (c) is the same
ranking as a log-log rank-frequency plot, where a power law is a straight line. Built on
matplotlib's Agg canvas: no window, no pyplot state, a file only when `path` is given.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from paperlab.papers.powerinfer2.profile import ActivationProfile


def plot_activation_profile(
    profile: ActivationProfile, path: str | os.PathLike | None = None, *, q: float = 0.8
) -> Any:
    """Three panels: sparsity per layer, cumulative activations vs neurons, rank-frequency.

    Returns a `matplotlib.figure.Figure`; saves it to `path` (png/pdf/svg) only if given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8))
    FigureCanvasAgg(fig)
    ax_sparsity, ax_cdf, ax_rank = fig.subplots(1, 3)
    _sparsity_panel(ax_sparsity, profile)
    shares = profile.share_covering(q)
    for l, counts in enumerate(profile.counts):
        ranked = torch.sort(counts, descending=True).values.double()
        x = torch.arange(1, len(ranked) + 1, dtype=torch.double)
        total = float(ranked.sum()) or 1.0
        label = f"layer {l}: {shares[l]:.0%} of neurons"
        ax_cdf.plot((x / len(ranked)).numpy(), (ranked.cumsum(0) / total).numpy(), label=label)
        freq = ranked / profile.n_tokens
        keep = freq > 0  # log axes: never-active neurons are left out
        ax_rank.loglog(x[keep].numpy(), freq[keep].numpy(), label=f"layer {l}")
    ax_cdf.axhline(q, color="grey", ls="--", lw=1)
    ax_cdf.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="uniform")
    ax_cdf.set(
        xlabel="share of neurons (most active first)",
        ylabel="share of activations",
        title=f"(b) skew: neurons covering {q:.0%} of activations",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax_cdf.legend(fontsize=7, loc="lower right")
    ax_rank.set(
        xlabel="neuron rank", ylabel="activation frequency", title="(c) rank-frequency (log-log)"
    )
    ax_rank.legend(fontsize=7)
    fig.suptitle(f"ReLU decoder activation profile ({profile.n_tokens} tokens)", fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=130, bbox_inches="tight")
    return fig


def _sparsity_panel(ax: Any, profile: ActivationProfile) -> None:
    sparsity = profile.sparsity()
    layers = list(range(len(sparsity)))
    bars = ax.bar(layers, [100 * s for s in sparsity], color="tab:blue")
    ax.bar_label(bars, fmt="%.0f%%", fontsize=8)
    ax.set(
        xlabel="layer",
        ylabel="inactive (neuron, token) pairs, %",
        ylim=(0, 105),
        title="(a) activation sparsity per layer",
        xticks=layers,
    )
