"""KAN's four headline claims, re-run in miniature (card `kan` in PAPERS.md).

(a) KANs beat MLPs of at least as many parameters on the paper's toy functions (Fig. 3.1).
(b) Grid extension gives a staircase of falling loss; test RMSE ~ G^-(k+1) = G^-4 (Fig. 2.3).
(c) Sparsification + pruning + symbolic snapping recovers exp(sin(pi x) + y^2) (Sec. 2.5.1).
(d) Continual learning: KANs forget less than MLPs (spline locality, Fig. 3.4).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from paperlab.claims import Claim, PaperClaims, RunContext, all_of, at_least, at_most
from paperlab.core.device import torch_threads
from paperlab.papers.kan.kan import KAN
from paperlab.papers.kan.symbolic import auto_symbolic, symbolic_formula
from paperlab.papers.kan.toy import (
    PEAK_CENTERS,
    fit_lbfgs,
    make_dataset,
    mlp_at_least,
    peak_phase,
    peaks,
    rmse,
    toy_functions,
)


@dataclass
class KANClaimsConfig:
    n_train: int = 1000
    n_test: int = 1000
    steps: int = 50  # LBFGS steps per training stage
    # (a) KAN vs MLP
    functions: tuple[str, ...] = ("j0", "exp_sin", "xy", "exp_mean_sin2", "four_var")
    high_dim: int = 100
    grids_a: tuple[int, ...] = (3, 5, 10)  # grid-extension schedule of the KANs in (a)
    mlp_depth: int = 3
    # (b) grid extension staircase
    width_b: tuple[int, ...] = (2, 1, 1)
    grids_b: tuple[int, ...] = (3, 5, 10, 20, 50)
    # (c) prune + snap
    width_c: tuple[int, ...] = (2, 5, 1)
    lamb: float = 0.01
    lamb_entropy: float = 10.0  # the official tutorial's value for this example
    prune_threshold: float = 0.01
    snap_steps: int = 50
    snap_seeds: int = 4  # the pipeline is seed-sensitive: report its recovery rate
    # (d) continual learning
    cl_grid: int = 200
    cl_points: int = 200  # per phase
    cl_steps: int = 20  # LBFGS steps per phase
    cl_mlp_width: int = 16

    def __post_init__(self) -> None:
        unknown = set(self.functions) - set(toy_functions(self.high_dim))
        if unknown:
            known = ", ".join(toy_functions(self.high_dim))
            raise ValueError(f"unknown function(s) {', '.join(sorted(unknown))}; known: {known}")
        for name in ("grids_a", "grids_b"):
            grids = getattr(self, name)
            if not grids or any(b <= a for a, b in zip(grids, grids[1:], strict=False)):
                raise ValueError(f"{name} must be increasing grid sizes, e.g. 3,5,10")
        if min(self.steps, self.n_train, self.n_test, self.snap_seeds) < 1:
            raise ValueError("steps, n_train, n_test and snap_seeds must be >= 1")


PRESETS = {
    "tiny": dict(
        n_train=200,
        n_test=200,
        steps=10,
        functions=("exp_sin", "xy"),
        high_dim=10,
        grids_a=(3, 5),
        grids_b=(3, 5, 10),
        snap_steps=10,
        snap_seeds=1,
        cl_grid=50,
        cl_points=50,
        cl_steps=5,
    ),
    "default": {},
    "full": dict(
        steps=200,
        grids_a=(3, 5, 10, 20, 50),
        grids_b=(3, 5, 10, 20, 50, 100, 200),
        snap_steps=200,
        cl_steps=50,
    ),
}


def _one_thread(run: Callable[[RunContext], dict]) -> Callable[[RunContext], dict]:
    """KANs this small are bound by per-op overhead: one thread is faster and steadier."""

    @functools.wraps(run)
    def wrapped(ctx: RunContext) -> dict:
        with torch_threads(1):
            return run(ctx)

    return wrapped


def _train_kan_staircase(width, grids, data, steps, seed):
    """Train at grids[0], then extend the grid (Sec. 2.4) and keep training; record RMSEs."""
    model = KAN(width=width, grid_size=grids[0], seed=seed)
    x = data["train_input"]
    history = {"grid": [], "train": [], "test": [], "curve_train": [], "curve_test": []}
    for i, g in enumerate(grids):
        if i > 0:
            model = model.refine(g, x)
        h = model.fit(data, opt="LBFGS", steps=steps, update_grid=(i == 0))
        history["curve_train"] += h["train_loss"]
        history["curve_test"] += h["test_loss"]
        history["grid"].append(g)
        history["train"].append(rmse(model, x, data["train_label"]))
        history["test"].append(rmse(model, data["test_input"], data["test_label"]))
    return model, history


# ---------------------------------------------------------------------------------------------
# (a) KAN vs MLP at >= equal parameters


@_one_thread
def run_kan_vs_mlp(ctx: RunContext) -> dict[str, float]:
    cfg: KANClaimsConfig = ctx.config
    lib = toy_functions(cfg.high_dim)
    measured: dict[str, float] = {}
    ratios = []
    for name in cfg.functions:
        f = lib[name]
        data = make_dataset(f.fn, f.n_var, n_train=cfg.n_train, n_test=cfg.n_test, seed=ctx.seed)
        kan, _ = _train_kan_staircase(f.kan_width, cfg.grids_a, data, cfg.steps, ctx.seed)
        mlp = mlp_at_least(kan.n_params, n_in=f.n_var, depth=cfg.mlp_depth, seed=ctx.seed)
        fit_lbfgs(mlp, data["train_input"], data["train_label"], steps=cfg.steps * len(cfg.grids_a))
        k = rmse(kan, data["test_input"], data["test_label"])
        m = rmse(mlp, data["test_input"], data["test_label"])
        measured |= {
            f"{name}_kan_rmse": k,
            f"{name}_mlp_rmse": m,
            f"{name}_kan_params": kan.n_params,
            f"{name}_mlp_params": mlp.n_params,
        }
        ratios.append(k / m)
    measured["win_fraction"] = float(np.mean([r < 1 for r in ratios]))
    measured["geomean_rmse_ratio"] = float(np.exp(np.mean(np.log(ratios))))
    _plot_a(ctx, cfg.functions, measured)
    return measured


def _plot_a(ctx: RunContext, names, m) -> None:
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


# ---------------------------------------------------------------------------------------------
# (b) grid extension staircase and scaling exponent


@_one_thread
def run_grid_extension(ctx: RunContext) -> dict[str, float]:
    cfg: KANClaimsConfig = ctx.config
    f = toy_functions()["exp_sin"]
    data = make_dataset(f.fn, 2, n_train=cfg.n_train, n_test=cfg.n_test, seed=ctx.seed)
    _, h = _train_kan_staircase(cfg.width_b, cfg.grids_b, data, cfg.steps, ctx.seed)
    train, test, grids = np.array(h["train"]), np.array(h["test"]), np.array(h["grid"])
    # Staircase: every extension lowers the training loss (allowing 1% noise).
    drops = int(np.sum(train[1:] <= train[:-1] * 1.01))
    # Exponent alpha of test RMSE ~ G^-alpha, fitted up to the best test point (beyond it
    # the test error is dominated by overfitting/noise, as in the paper's Fig. 2.3).
    best = int(np.argmin(test))
    upto = max(best, 1)
    slope = np.polyfit(np.log(grids[: upto + 1]), np.log(test[: upto + 1]), 1)[0]
    _plot_b(ctx, h, grids, test, slope)
    return {
        "extensions": len(grids) - 1,
        "extensions_lowering_train": drops,
        "staircase_fraction": drops / max(len(grids) - 1, 1),
        "test_rmse_first": float(test[0]),
        "test_rmse_best": float(test[best]),
        "test_improvement": float(test[0] / test[best]),
        "alpha": float(-slope),
    }


def _plot_b(ctx, h, grids, test, slope) -> None:
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


# ---------------------------------------------------------------------------------------------
# (c) prune + symbolic snapping


EXPECTED_FUNCS = ("sin", "x^2", "exp")


def _prune_snap_once(cfg: KANClaimsConfig, data: dict, seed: int, plot_path=None) -> dict:
    """Sec. 2.5.1: sparsify -> prune -> retrain -> snap -> tune the affine parameters."""
    x = data["train_input"]
    model = KAN(width=cfg.width_c, grid_size=5, seed=seed)
    model.fit(data, opt="LBFGS", steps=cfg.steps, lamb=cfg.lamb, lamb_entropy=cfg.lamb_entropy)
    pruned = model.prune(x, threshold=cfg.prune_threshold)
    pruned.fit(data, opt="LBFGS", steps=cfg.steps)
    if plot_path is not None:
        pruned.plot(x, path=plot_path)
    chosen = auto_symbolic(pruned, x)
    pruned.fit(data, opt="LBFGS", steps=cfg.snap_steps, update_grid=False)
    pred, y = pruned(data["test_input"]).detach(), data["test_label"]
    r2 = 1 - float(((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    names = {name for (_, _, _, name, _) in chosen}
    found = sum(1 for fn in EXPECTED_FUNCS if fn in names)
    hidden = pruned.width[1]
    return {
        "hidden": hidden,
        "found": found,
        "r2": r2,
        "rmse": float(torch.sqrt(((pred - y) ** 2).mean())),
        "recovered": hidden == 1 and found == len(EXPECTED_FUNCS) and r2 >= 0.999,
        "formula": symbolic_formula(pruned, var_names=("x", "y"))[0],
    }


@_one_thread
def run_prune_snap(ctx: RunContext) -> dict[str, float]:
    cfg: KANClaimsConfig = ctx.config
    f = toy_functions()["exp_sin"]
    data = make_dataset(f.fn, 2, n_train=cfg.n_train, n_test=cfg.n_test, seed=ctx.seed)
    # DEVIATION: the paper shows one interactive run; pruning to [2,1,1] is seed-sensitive
    # (pykan 0.2.8 too), so we report the recovery rate over `snap_seeds` seeds.
    runs = []
    for s in range(cfg.snap_seeds):
        path = ctx.plot_path("pruned_kan.png") if s == 0 else None
        runs.append(_prune_snap_once(cfg, data, ctx.seed + s, plot_path=path))
    best = max(runs, key=lambda r: (r["recovered"], r["r2"]))
    ctx.notes["formula"] = best["formula"]
    ctx.notes["runs"] = [
        f"seed {ctx.seed + i}: width [2,{r['hidden']},1], {r['formula']}, R^2 {r['r2']:.6f}"
        for i, r in enumerate(runs)
    ]
    return {
        "recovery_rate": float(np.mean([r["recovered"] for r in runs])),
        "seeds": len(runs),
        "best_formula_test_r2": best["r2"],
        "best_formula_test_rmse": best["rmse"],
        "best_hidden_after_prune": best["hidden"],
        "best_expected_functions_found": best["found"],
        "median_hidden_after_prune": float(np.median([r["hidden"] for r in runs])),
    }


# ---------------------------------------------------------------------------------------------
# (d) continual learning


@_one_thread
def run_continual(ctx: RunContext) -> dict[str, float]:
    cfg: KANClaimsConfig = ctx.config
    kan = KAN(width=(1, 1), grid_size=cfg.cl_grid, seed=ctx.seed)
    mlp = mlp_at_least(kan.n_params, n_in=1, depth=2, seed=ctx.seed)
    grid_x = torch.linspace(-1, 1, 801)[:, None]
    snapshots = []
    for phase in range(len(PEAK_CENTERS)):
        x, y = peak_phase(phase, cfg.cl_points, seed=ctx.seed)
        data = {"train_input": x, "train_label": y, "test_input": x, "test_label": y}
        kan.fit(data, opt="LBFGS", steps=cfg.cl_steps, update_grid=False)  # fixed grid
        fit_lbfgs(mlp, x, y, steps=cfg.cl_steps)
        with torch.no_grad():
            snapshots.append((kan(grid_x).squeeze(1).numpy(), mlp(grid_x).squeeze(1).numpy()))
    # forgetting: error on the regions of phases 0..3 after training on phase 4
    old = [peak_phase(p, cfg.cl_points, seed=ctx.seed + 7) for p in range(len(PEAK_CENTERS) - 1)]
    xo, yo = torch.cat([o[0] for o in old]), torch.cat([o[1] for o in old])
    k, m = rmse(kan, xo, yo), rmse(mlp, xo, yo)
    _plot_d(ctx, grid_x, snapshots)
    return {
        "old_rmse_kan": k,
        "old_rmse_mlp": m,
        "forgetting_ratio_mlp_over_kan": m / k,
        "kan_params": kan.n_params,
        "mlp_params": mlp.n_params,
    }


def _plot_d(ctx, grid_x, snapshots) -> None:
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


# ---------------------------------------------------------------------------------------------

PAPER = PaperClaims(
    config=KANClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="a",
            statement="KANs beat MLPs with at least as many parameters on the toy functions",
            paper_figure="KAN lower test RMSE on all 5 (Fig. 3.1)",
            criterion=all_of(at_least("win_fraction", 0.75), at_most("geomean_rmse_ratio", 1.0)),
            run=run_kan_vs_mlp,
            ours="KAN wins {win_fraction:.0%}, RMSE ratio {geomean_rmse_ratio:.2g}",
        ),
        Claim(
            id="b",
            statement="grid extension gives a loss staircase; test RMSE ~ G^-4",
            paper_figure="staircase; alpha = 4 (k=3)",
            criterion=all_of(
                at_least("staircase_fraction", 0.75), at_least("test_improvement", 5.0)
            ),
            run=run_grid_extension,
            ours="{test_improvement:.0f}x lower test RMSE; alpha = {alpha:.2f}",
        ),
        Claim(
            id="c",
            statement="prune + snap recovers exp(sin(pi x) + y^2) (share of seeds: [2,1,1], "
            "sin/x^2/exp, R^2 >= 0.999)",
            paper_figure="exact formula, R^2 ~ 1 (Sec. 2.5.1)",
            criterion=at_least("recovery_rate", 0.5, margin=0.5 - 1e-9),
            run=run_prune_snap,
            ours="{recovery_rate:.0%} of {seeds:.0f} seeds; {formula}",
        ),
        Claim(
            id="d",
            statement="continual learning: KANs forget less than MLPs (5 Gaussian peaks)",
            paper_figure="KAN keeps old peaks, MLP forgets (Fig. 3.4)",
            criterion=at_least("forgetting_ratio_mlp_over_kan", 2.0),
            run=run_continual,
            ours="old-region RMSE KAN {old_rmse_kan:.3f} vs MLP {old_rmse_mlp:.3f}",
        ),
    ],
)
