"""The claims' figure: every evaluator's Pearson (absolute) and pairwise accuracy (relative)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from paperlab.claims import RunContext


def plot_evaluators(ctx: RunContext, ev: Mapping[str, Mapping[str, float]]) -> None:
    names = list(ev)
    fig, ax = ctx.figure(figsize=(1.5 + 0.8 * len(names), 3.4))
    width = 0.38
    for j, (metric, label) in enumerate(
        (("pearson", "Pearson (absolute)"), ("accuracy", "accuracy (relative)"))
    ):
        xs = [i + (j - 0.5) * width for i in range(len(names))]
        ys = [0.0 if math.isnan(ev[n][metric]) else ev[n][metric] for n in names]
        ax.bar(xs, ys, width=width, label=label, color=f"C{j}")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("experts, joint training and merges")
    fig.tight_layout()
    ctx.save_figure(fig, "evaluators.png")
