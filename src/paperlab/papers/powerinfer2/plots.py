"""Plot of the PowerInfer-2 engine claims: decode speed and bytes read per token against the
memory budget (the activation profile's plots are in plots_model.py)."""

from __future__ import annotations

from paperlab.claims import RunContext


def plot_decode(ctx: RunContext, cfg, m: dict[str, float]) -> None:
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
