"""PowerInfer-2's figures: the activation profile (claim 1; drawn by plots_model.py, which the
library exposes too) and decode speed and bytes read per token against the memory budget
(claims 3, 4 and 6). Saved as artifacts of each result (shown in the HTML report)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paperlab.claims import RunContext
from paperlab.papers.powerinfer2.plots_model import plot_activation_profile
from paperlab.papers.powerinfer2.profile import ActivationProfile

if TYPE_CHECKING:
    from paperlab.papers.powerinfer2.claims import PowerInfer2ClaimsConfig


def plot_profile(ctx: RunContext, profile: ActivationProfile) -> None:
    """Sparsity per layer, cumulative activations vs share of neurons, rank-frequency."""
    plot_activation_profile(profile, ctx.plot_path("activation_profile.png"))


def plot_decode(ctx: RunContext, cfg: PowerInfer2ClaimsConfig, m: dict[str, float]) -> None:
    """Left: decode tokens/s vs budget (engine, mmap dense, the in-memory dense line).
    Right: bytes read from storage per token (kernel count) vs budget."""
    budgets = [100 * b for b in cfg.budgets]
    tags = [f"{round(b)}" for b in budgets]
    fig, (ax, bx) = ctx.figure(1, 2, figsize=(10, 3.8))
    ax.plot(budgets, [m[f"engine_tps_{t}"] for t in tags], "o-", label="PowerInfer-2 engine")
    ax.plot(
        budgets, [m[f"mmap_tps_{t}"] for t in tags], "s--", label="dense, mmap (llama.cpp-style)"
    )
    ax.axhline(m["dense_tps"], color="gray", ls=":", label="dense, all in memory")
    for b, t in zip(budgets, tags, strict=True):
        ax.annotate(
            f"{m[f'speedup_{t}']:.2f}x",
            (b, m[f"engine_tps_{t}"]),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    ax.set(
        xlabel="memory budget (% of FFN weights)",
        ylabel="decode tokens/s",
        title="decode speed vs memory budget",
        ylim=(0, None),
    )
    ax.invert_xaxis()
    ax.legend(fontsize=8)
    mib = 2**20
    bx.plot(
        budgets, [m[f"engine_block_bytes_per_token_{t}"] / mib for t in tags], "o-", label="engine"
    )
    bx.plot(
        budgets,
        [m[f"mmap_block_bytes_per_token_{t}"] / mib for t in tags],
        "s--",
        label="dense, mmap",
    )
    bx.set(
        xlabel="memory budget (% of FFN weights)",
        ylabel="MiB read from storage per token",
        title="bytes read per token (block layer)",
    )
    bx.invert_xaxis()
    bx.legend(fontsize=8)
    ctx.save_figure(fig, "decode_vs_budget.png")
