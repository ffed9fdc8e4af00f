"""The claims' figure: accuracy per domain of the routed graph (each router), the generalist and
perfect routing (matplotlib's Agg canvas through the run context)."""

from __future__ import annotations

from typing import Any

import numpy as np


def plot_accuracy(ctx: Any, per_domain: dict[str, dict[str, float]]) -> None:
    """`per_domain[system][domain]` accuracies -> accuracy.png (grouped bars)."""
    systems = list(per_domain)
    domains = list(next(iter(per_domain.values())))
    fig, ax = ctx.figure(figsize=(7.5, 3.2))
    width = 0.8 / len(systems)
    x = np.arange(len(domains))
    for i, name in enumerate(systems):
        ax.bar(x + i * width, [per_domain[name][d] for d in domains], width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, domains)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title("routed graph vs a generalist of the workers' total size")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    ctx.save_figure(fig, "accuracy.png")
