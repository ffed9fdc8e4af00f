"""The case study's figure: accuracy per technique with 95% bootstrap whiskers (the paper's
Figure 6.5 draws min/max over phrasings instead; we run one phrasing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def draw_case_study(ax: Any, results: Mapping[str, Any], *, chance: float = 0.25) -> None:
    names = list(results)
    acc = [results[n].accuracy.value for n in names]
    low = [a - results[n].accuracy.low for a, n in zip(acc, names, strict=True)]
    high = [results[n].accuracy.high - a for a, n in zip(acc, names, strict=True)]
    colors = ["#6a9" if "few" in n else "#69c" for n in names]
    ax.bar(range(len(names)), acc, yerr=[low, high], capsize=4, color=colors)
    ax.axhline(chance, color="#999", ls="--", lw=1, label="chance")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")


def plot_case_study(ctx: Any, results: Mapping[str, Any]) -> None:
    fig, ax = ctx.figure(figsize=(7, 3.4))
    draw_case_study(ax, results)
    ax.set_title("the case study's six techniques (95% bootstrap intervals)")
    ctx.save_figure(fig, "case_study.png")


def save_case_study_plot(results: Mapping[str, Any], path: str) -> None:
    """The same figure to a file (the CLI's --plot), written to a temp file then renamed."""
    import os
    from pathlib import Path

    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.4))
    draw_case_study(fig.subplots(), results)
    fig.tight_layout()
    out = Path(path)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
