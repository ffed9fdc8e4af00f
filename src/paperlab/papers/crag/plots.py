"""The claims' figure: each system's score, and its accuracy by dynamism and by popularity."""

from __future__ import annotations

from collections.abc import Mapping

from paperlab.claims import RunContext
from paperlab.papers.crag.world import DYNAMISM, POPULARITY

SYSTEMS = (("llm_only", "LLM-only"), ("rag", "RAG"), ("rag_kg", "RAG + KG"))


def plot_systems(ctx: RunContext, m: Mapping[str, float]) -> None:
    fig, axes = ctx.figure(1, 3, figsize=(11, 3.4))
    names = [label for _, label in SYSTEMS]
    axes[0].bar(names, [m[f"{p}_score"] for p, _ in SYSTEMS], color=["C0", "C1", "C2"])
    axes[0].axhline(0, color="k", lw=0.6)
    axes[0].set_title("truthfulness score")
    for ax, buckets, title in (
        (axes[1], DYNAMISM, "by dynamism"),
        (axes[2], POPULARITY, "by popularity"),
    ):
        width = 0.8 / len(SYSTEMS)
        for j, (p, label) in enumerate(SYSTEMS):
            xs = [i + (j - 1) * width for i in range(len(buckets))]
            ys = [m[f"{p}_{b.replace('-', '_')}_accuracy"] for b in buckets]
            ax.bar(xs, ys, width=width, label=label, color=f"C{j}")
        ax.set_xticks(range(len(buckets)))
        ax.set_xticklabels(buckets, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"accuracy {title}")
    axes[2].legend(fontsize=8)
    ctx.save_figure(fig, "systems.png")
