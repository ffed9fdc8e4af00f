"""KAN's claim figures: test RMSE of KANs vs MLPs (a), the grid-extension staircase and its
scaling (b), the continual-learning snapshots (d); (c)'s pruned KAN is drawn by ``plot.py``
(`KAN.plot`). Every figure goes through the run context (Agg canvas, an artifact of the
result)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from paperlab.claims import RunContext
from paperlab.papers.kan.toy import peaks


def plot_kan_vs_mlp(ctx: RunContext, names: Sequence[str], m: Mapping[str, float]) -> None:
    """Test RMSE per function, KAN next to its MLP (parameter counts under the names)."""
    fig, ax = ctx.figure(figsize=(1.4 * len(names) + 2, 3.2))
    xs = np.arange(len(names))
    ax.bar(xs - 0.2, [m[f"{n}_kan_rmse"] for n in names], 0.4, label="KAN")
    ax.bar(xs + 0.2, [m[f"{n}_mlp_rmse"] for n in names], 0.4, label="MLP (>= params)")
    ax.set_xticks(
        xs,
        [f"{n}\n{int(m[f'{n}_kan_params'])}/{int(m[f'{n}_mlp_params'])} p" for n in names],
        fontsize=8,
    )
    ax.set_yscale("log")
    ax.set_ylabel("test RMSE")
    ax.set_title("KAN vs MLP at equal-or-more MLP parameters")
    ax.legend()
    ctx.save_figure(fig, "kan_vs_mlp.png", dpi=110)


def plot_grid_extension(
    ctx: RunContext, h: Mapping[str, list], grids: np.ndarray, test: np.ndarray, slope: float
) -> None:
    """The loss curves over the grid stages, and test RMSE against G with the fitted slope."""
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(9, 3.3))
    a1.plot(h["curve_train"], label="train")
    a1.plot(h["curve_test"], label="test")
    a1.set_yscale("log")
    a1.set_xlabel("LBFGS step (grid extended every stage)")
    a1.set_ylabel("RMSE")
    a1.legend()
    a1.set_title("loss staircase")
    a2.loglog(grids, test, "o-", label=f"test (fit: G^-{-slope:.2f})")
    ref = test[0] * (grids / grids[0]) ** -4.0
    a2.loglog(grids, ref, "k--", alpha=0.5, label="paper: G^-4")
    a2.set_xlabel("grid size G")
    a2.legend()
    a2.set_title("scaling with grid")
    ctx.save_figure(fig, "grid_extension.png", dpi=110)


def plot_continual(
    ctx: RunContext, grid_x: torch.Tensor, snapshots: Sequence[Sequence[Sequence[float]]]
) -> None:
    """KAN (top) and MLP (bottom) after each phase, the phase's region shaded."""
    n = len(snapshots)
    fig, axes = ctx.figure(2, n, figsize=(2.2 * n, 4), sharey=True)
    truth = peaks(grid_x).squeeze(1).numpy()
    xs = grid_x.squeeze(1).numpy()
    for i, (k, m) in enumerate(snapshots):
        for row, (pred, name) in enumerate(((k, "KAN"), (m, "MLP"))):
            ax = axes[row, i]
            ax.plot(xs, truth, color="0.8")
            ax.axvspan(-1 + 0.4 * i, -0.6 + 0.4 * i, color="y", alpha=0.2)
            ax.plot(xs, pred, lw=1)
            ax.set_title(f"{name}, phase {i + 1}", fontsize=8)
            ax.set_ylim(-0.5, 1.5)
    ctx.save_figure(fig, "continual.png", dpi=100)
