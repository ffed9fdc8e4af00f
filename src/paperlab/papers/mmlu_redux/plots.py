"""The claims' figures: Kendall tau per subject over corruption seeds; detector F2 per program."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from paperlab.claims import RunContext


def plot_taus(ctx: RunContext, taus: Mapping[str, Sequence[float]], high: str) -> None:
    """One column of points per subject (a point per corruption seed), the high-error subject
    in red: how far the ranking on the ok subset is from the original ranking."""
    fig, ax = ctx.figure(figsize=(5.2, 3.2))
    for i, (subject, values) in enumerate(taus.items()):
        colour = "C3" if subject == high else "C0"
        ax.scatter([i] * len(values), values, color=colour, alpha=0.7, s=18)
        ax.plot([i - 0.25, i + 0.25], [sum(values) / len(values)] * 2, color=colour)
    ax.set_xticks(range(len(taus)), [f"{s}\n(high error)" if s == high else s for s in taus])
    ax.set_ylabel("Kendall tau, original vs ok subset")
    ax.set_ylim(-1.05, 1.05)
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_title("Ranking of the models before vs after re-annotation", fontsize=10)
    ctx.save_figure(fig, "rankings.png")


def plot_detection(ctx: RunContext, m: Mapping[str, float], methods: Sequence[str]) -> None:
    """F2 on the error class (overall) and on wrong ground truths, per detection program, with
    the heuristic baseline as a line."""
    fig, ax = ctx.figure(figsize=(1.6 + 1.1 * len(methods), 3.4))
    width = 0.2
    for i, method in enumerate(methods):
        bars = [
            (f"{method}_f2", "C0", -1.5),
            (f"{method}_retrieval_f2", "C1", -0.5),
            (f"{method}_wrong_groundtruth_f2", "C2", 0.5),
            (f"{method}_retrieval_wrong_groundtruth_f2", "C3", 1.5),
        ]
        for key, colour, offset in bars:
            ax.bar(i + offset * width, m.get(key, 0.0), width, color=colour)
    ax.axhline(m["heur_overall_f2"], color="black", ls="--", lw=1)
    ax.set_xticks(range(len(methods)), [x.replace("_", "\n") for x in methods], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F2 (errors are the positive class)")
    labels = ["overall", "overall + retrieval", "wrong GT", "wrong GT + retrieval", "heuristic"]
    handles = [ax.bar(0, 0, color=f"C{i}") for i in range(4)]
    handles.append(ax.axhline(m["heur_overall_f2"], color="black", ls="--", lw=1))
    ax.legend(handles, labels, fontsize=7, loc="upper left")
    ax.set_title("Error detection by program", fontsize=10)
    ctx.save_figure(fig, "detection.png")
