"""Magpie's figures: task categories of the extracted instructions, held-out accuracies."""

from __future__ import annotations

from collections import Counter
from typing import Any

from paperlab.claims import RunContext


def plot_categories(ctx: RunContext, ev: dict[str, Any]) -> None:
    counts = Counter(str(r.get("task_category")) for r in ev["records"])
    kept = Counter(str(r.get("task_category")) for r in ev["kept"])
    names = sorted(counts, key=lambda k: -counts[k])
    fig, ax = ctx.figure(figsize=(7, 3.2))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [counts[n] for n in names], width=0.4, label="generated")
    ax.bar([x + 0.2 for x in xs], [kept[n] for n in names], width=0.4, label="kept by the filter")
    ax.set_xticks(list(xs), names, rotation=25, ha="right")
    ax.set_ylabel("instructions")
    ax.set_title("task categories of instructions extracted from the template alone")
    ax.legend()
    ctx.save_figure(fig, "categories.png")


def plot_accuracy(ctx: RunContext, ev: dict[str, Any]) -> None:
    names = list(ev["scores"])
    accs = [sum(ev["scores"][n]) / len(ev["scores"][n]) for n in names]
    fig, ax = ctx.figure(figsize=(5, 3))
    ax.bar(names, accs, color=["#999", "#c96", "#36c", "#69c"][: len(names)])
    ax.set_ylabel("held-out exact accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("base vs aligned vs base + Magpie SFT")
    ctx.save_figure(fig, "accuracy.png")
