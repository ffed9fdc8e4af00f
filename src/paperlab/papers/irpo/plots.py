"""The claims' figures: accuracy per iteration (greedy and maj@k, DPO + NLL vs DPO alone) and
the winners' log-probability per training step (the paper's Fig. 3 diagnosis)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from paperlab.claims import RunContext

LABELS = {"dpo_nll": "DPO + NLL", "dpo": "DPO alone"}


def plot_accuracy(ctx: RunContext, runs: dict, seeds: Sequence[int]) -> None:
    fig, ax = ctx.figure(figsize=(5.2, 3.6))
    for c, arm in enumerate(LABELS):
        T = len(runs[(seeds[0], arm)])
        for key, style in (("greedy_acc", "-o"), ("maj_acc", "--s")):
            vals = np.array([[runs[(s, arm)][t][key] for t in range(T)] for s in seeds])
            ax.errorbar(
                range(T),
                vals.mean(0),
                yerr=vals.std(0),
                fmt=style,
                color=f"C{c}",
                capsize=3,
                label=f"{LABELS[arm]}, {'greedy' if key == 'greedy_acc' else 'maj@k'}",
            )
    ax.set_xlabel("iteration (M_t)")
    ax.set_ylabel("test accuracy")
    ax.set_xticks(range(T))
    ax.set_title(f"Iterative RPO on CoT arithmetic ({len(seeds)} seeds, ±std)")
    ax.legend(fontsize=7)
    ctx.save_figure(fig, "accuracy_per_iteration.png")


def plot_logprobs(ctx: RunContext, runs: dict, seeds: Sequence[int]) -> None:
    """The batch's mean winner log-prob at every training step, iterations one after another."""
    fig, ax = ctx.figure(figsize=(5.6, 3.6))
    for c, arm in enumerate(LABELS):
        for j, s in enumerate(seeds):
            curve = [v for h in runs[(s, arm)][1:] for v in h["steps"].get("chosen_logp", [])]
            ax.plot(curve, color=f"C{c}", alpha=0.8, lw=1, label=LABELS[arm] if j == 0 else None)
    ax.set_xlabel("training step (iterations 1..T in a row)")
    ax.set_ylabel("log p(winner) of the batch")
    ax.set_title("Winners' log-probability during training")
    ax.legend(fontsize=8)
    ctx.save_figure(fig, "chosen_logprob_per_step.png")
