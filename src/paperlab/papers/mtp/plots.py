"""MTP's figures: decoding speed, peak memory, the copy-task curves and the validation losses
(every plot goes through the run context: Agg canvas, saved as an artifact of the result)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from paperlab.claims import RunContext
from paperlab.core.train import History


def plot_speedup(
    ctx: RunContext, counts: Sequence[int], n: int, plain_tps: float, spec_tps: float
) -> None:
    """Tokens/s of both decoders and the histogram of tokens per forward."""
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(8, 3.2))
    a1.bar(["head-1 greedy", "self-speculative"], [plain_tps, spec_tps], color=["C0", "C1"])
    a1.set_ylabel("tokens / s (batch 1, CPU)")
    a1.set_title("same weights, identical output")
    a2.hist(counts, bins=[b + 0.5 for b in range(n + 1)], rwidth=0.8)
    a2.set_xlabel(f"tokens per forward (max {n})")
    a2.set_ylabel("forwards")
    a2.set_title("accepted drafts + 1")
    ctx.save_figure(fig, "speedup.png", dpi=110)


def plot_memory(
    ctx: RunContext, futures: Sequence[int], rows: Mapping[tuple[str, int], float], unit: int
) -> None:
    """Peak memory of one training step against n, naive and efficient schedules."""
    fig, ax = ctx.figure(figsize=(4.8, 3.3))
    for schedule, style in (("naive", "o-"), ("efficient", "s-")):
        ax.plot(
            futures, [rows[(schedule, n)] * unit / 2**20 for n in futures], style, label=schedule
        )
    ax.set_xticks(list(futures))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("heads n")
    ax.set_ylabel("peak memory of one step (MB over set-up)")
    ax.set_title(f"logits tensor = {unit / 2**20:.0f} MB")
    ax.legend()
    ctx.save_figure(fig, "memory.png", dpi=110)


def plot_induction(
    ctx: RunContext,
    curves: Mapping[tuple[int, int], tuple[Sequence[int], Sequence[float]]],
    threshold: float,
) -> None:
    """Head-1 copy accuracy against training step, one line per (n, seed)."""
    fig, ax = ctx.figure(figsize=(5.2, 3.4))
    for (n, s), (steps, acc) in sorted(curves.items()):
        ax.plot(steps, acc, color=f"C{n - 1}", alpha=0.8, label=f"n={n}" if s == 0 else None)
    ax.axhline(threshold, color="k", ls="--", lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("head-1 accuracy on the copy half")
    ax.set_title("induction / copy task (equal parameters)")
    ax.legend()
    ctx.save_figure(fig, "induction.png", dpi=110)


def plot_val(
    ctx: RunContext,
    ntp_hist: History,
    mtp_hist: History,
    ntp_val: list[float],
    mtp_val: list[float],
) -> None:
    """Training curves of head 1 and the per-head validation losses."""
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(9, 3.3))
    ntp_curve = ntp_hist["head1"] if "head1" in ntp_hist else ntp_hist["loss"]  # shared target
    a1.plot(ntp_hist["step"], ntp_curve, label="NTP (n=1)", alpha=0.8)
    a1.plot(mtp_hist["step"], mtp_hist["head1"], label=f"MTP head 1 (n={len(mtp_val)})", alpha=0.8)
    a1.set_xlabel("step")
    a1.set_ylabel("train CE (nats/byte)")
    a1.legend()
    a2.bar(
        ["NTP"] + [f"MTP h{i + 1}" for i in range(len(mtp_val))],
        ntp_val[:1] + mtp_val,
        color=["C0"] + ["C1"] * len(mtp_val),
    )
    a2.set_ylabel("validation CE (nats/byte)")
    a2.set_title("head i predicts byte t+i")
    ctx.save_figure(fig, "val_loss.png", dpi=110)
