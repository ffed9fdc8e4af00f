"""Kangaroo's figures: decoding speed, adapter training, the eta sweep and the sampled
next-token frequencies (every plot goes through the run context: Agg canvas, saved as an
artifact of the claim's result)."""

from __future__ import annotations

import torch

from paperlab.claims import RunContext
from paperlab.core.timing import Timings
from paperlab.core.train import History

CLASS_LABELS = ("spa", "new", "low", "upp", "dig", "und", "bra", "oth")  # see CLASS_NAMES


def plot_speedup(ctx: RunContext, timings: Timings, tokens: int) -> None:
    """Tokens/s of every timed method and the histogram of tokens per verification."""
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(8.5, 3.2))
    names = list(timings.seconds)
    a1.bar(names, [tokens / timings.median(n) for n in names], color=["C0", "C1"])
    a1.set_ylabel("tokens / s (batch 1, CPU)")
    a1.set_title("same target, identical output")
    lengths = [n for r in timings.outputs["kangaroo"] for n in r.accept_lengths]
    a2.hist(lengths, bins=[b + 0.5 for b in range(max(lengths) + 1)], rwidth=0.8)
    a2.set_xlabel("tokens per verification (accepted drafts + 1)")
    a2.set_ylabel("rounds")
    ctx.save_figure(fig, "speedup.png")


def plot_adapter_training(ctx: RunContext, hist: History, info: dict) -> None:
    """The adapter's training loss and expected acceptance, with validation before/after."""
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(8.5, 3.2))
    a1.plot(hist["step"], hist["loss"], color="C1")
    a1.axhline(info["after"]["soft_ce"], color="k", ls="--", lw=0.8, label="validation, after")
    a1.set_xlabel("adapter step (target frozen)")
    a1.set_ylabel("soft cross-entropy to the target")
    a1.legend()
    a2.plot(hist["step"], hist["accept"], color="C2", label="train")
    a2.axhline(info["before"]["accept"], color="C0", ls=":", label="validation, before")
    a2.axhline(info["after"]["accept"], color="k", ls="--", lw=0.8, label="validation, after")
    a2.set_xlabel("adapter step")
    a2.set_ylabel("expected acceptance  E[sum min(p, q)]")
    a2.legend()
    ctx.save_figure(fig, "adapter_training.png")


def plot_eta(ctx: RunContext, sweeps: dict[str, dict[float, dict[str, float]]]) -> None:
    """Speedup, compression and acceptance against eta, one panel per decoding mode."""
    fig, axes = ctx.figure(1, len(sweeps), figsize=(4.6 * len(sweeps), 3.4), squeeze=False)
    for ax, (mode, rows) in zip(axes[0], sweeps.items(), strict=True):
        etas = sorted(rows)
        ax.plot(etas, [rows[e]["speedup"] for e in etas], "o-", label="speedup (tokens/s)")
        ax.plot(etas, [rows[e]["compression_rate"] for e in etas], "s--", label="tokens/target fwd")
        ax.plot(etas, [rows[e]["acceptance_rate"] for e in etas], "^:", label="drafts accepted")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel("eta (stop drafting when the draft's top-1 prob < eta)")
        ax.set_title(f"{mode} decoding")
        ax.legend(fontsize=8)
    ctx.save_figure(fig, "eta_sweep.png")


def plot_sampling(
    ctx: RunContext, plain: torch.Tensor, kangaroo: torch.Tensor, draft: torch.Tensor, vocab: int
) -> None:
    """Per new position after the first: the class frequencies of the three samplers."""
    n_pos = plain.shape[1] - 1
    fig, axes = ctx.figure(1, n_pos, figsize=(3.2 * n_pos, 3.0), squeeze=False)
    width = 0.28
    for t, ax in enumerate(axes[0], start=1):
        for k, (name, s) in enumerate(
            (("plain", plain), ("kangaroo", kangaroo), ("draft only", draft))
        ):
            freq = torch.bincount(s[:, t], minlength=vocab).double() / len(s)
            ax.bar([v + (k - 1) * width for v in range(vocab)], freq.tolist(), width, label=name)
        ax.set_xticks(range(vocab))
        ax.set_xticklabels(CLASS_LABELS[:vocab], rotation=60, fontsize=7)
        ax.set_title(f"new token {t + 1}")
    axes[0][0].set_ylabel("frequency")
    axes[0][0].legend(fontsize=7)
    ctx.save_figure(fig, "sampling.png")
