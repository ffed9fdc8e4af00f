"""The claims' figures: score vs input size per algorithm (TransNAR vs baseline), the NAR's
accuracy vs size, and the phase-2 training losses. Saved as artifacts of each result."""

from __future__ import annotations

from typing import Any

from paperlab.claims import RunContext


def plot_scores(ctx: RunContext, cfg: Any, models: dict) -> None:
    algos = cfg.algorithms
    fig, axes = ctx.figure(1, len(algos), figsize=(3.4 * len(algos), 3.4), squeeze=False)
    for ax, algo in zip(axes[0], algos, strict=True):
        for name, color in (("transnar", "C0"), ("baseline", "C1")):
            s = models[name]["scores"]["scores"]
            sizes = list(cfg.eval_sizes)
            ax.plot(
                sizes,
                [s[f"clrs_{algo}_n{n}"] for n in sizes],
                "o-",
                color=color,
                label=f"{name} CLRS score",
            )
            ax.plot(
                sizes,
                [s[f"shape_{algo}_n{n}"] for n in sizes],
                "s--",
                color=color,
                alpha=0.6,
                label=f"{name} shape score",
            )
        ax.axvspan(min(cfg.train_sizes) - 0.5, max(cfg.train_sizes) + 0.5, color="0.9")
        ax.set_title(algo)
        ax.set_xlabel("input size (shaded: training sizes)")
        ax.set_ylim(-0.03, 1.03)
    axes[0][0].set_ylabel("score")
    axes[0][0].legend(fontsize=7)
    ctx.save_figure(fig, "scores_vs_size.png")


def plot_nar(ctx: RunContext, cfg: Any, acc: dict[str, float]) -> None:
    fig, ax = ctx.figure(figsize=(5, 3.6))
    for algo in cfg.algorithms:
        ax.plot(
            cfg.eval_sizes, [acc[f"nar_acc_{algo}_n{n}"] for n in cfg.eval_sizes], "o-", label=algo
        )
    ax.axvspan(min(cfg.train_sizes) - 0.5, max(cfg.train_sizes) + 0.5, color="0.9")
    ax.set_xlabel("graph size (shaded: training sizes)")
    ax.set_ylabel("NAR element-wise accuracy")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=8)
    ctx.save_figure(fig, "nar_accuracy_vs_size.png")


def plot_loss(ctx: RunContext, models: dict) -> None:
    fig, ax = ctx.figure(figsize=(5, 3.6))
    for name in ("transnar", "baseline"):
        h = models[name]["history"]
        ax.plot(h["step"], h["loss"], label=name, alpha=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("answer-token cross-entropy")
    ax.set_yscale("log")
    ax.legend()
    ctx.save_figure(fig, "phase2_loss.png")
