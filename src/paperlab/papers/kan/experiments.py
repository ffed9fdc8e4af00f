"""KAN's experiments (Liu et al. 2024, arXiv 2404.19756): (a) KANs vs MLPs of at least as many
parameters on the toy functions (Sec. 3.1), (b) the grid-extension staircase (Sec. 2.4),
(c) sparsify -> prune -> snap on exp(sin(pi x) + y^2) over several seeds (Sec. 2.5.1),
(d) continual learning on five Gaussian peaks (Sec. 3.4).

Each claim's trainings are its own (no model is shared between claims); what they produce
(RMSEs, loss curves, the pruned KAN's plot, the continual-learning snapshots) goes through the
run's artifact cache with a codec, so a second run with the disk cache reads them instead of
training again. The criteria's constants (expected functions, the R^2 of a recovery, the
staircase's noise allowance) come from ``claims.py`` as plain arguments.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import FolderCodec, JSONCodec
from paperlab.core.device import torch_threads
from paperlab.papers.kan import plots
from paperlab.papers.kan.kan import KAN
from paperlab.papers.kan.symbolic import auto_symbolic, symbolic_formula
from paperlab.papers.kan.toy import (
    PEAK_CENTERS,
    fit_lbfgs,
    make_dataset,
    mlp_at_least,
    peak_phase,
    rmse,
    toy_functions,
)

if TYPE_CHECKING:
    from paperlab.papers.kan.claims import KANClaimsConfig

# the config fields each claim's trainings read (the keys of their cached results)
DATA_FIELDS = ("n_train", "n_test", "steps")
KAN_VS_MLP_FIELDS = (*DATA_FIELDS, "functions", "high_dim", "grids_a", "mlp_depth")
GRID_FIELDS = (*DATA_FIELDS, "width_b", "grids_b")
PRUNE_FIELDS = (
    *DATA_FIELDS,
    "width_c",
    "lamb",
    "lamb_entropy",
    "prune_threshold",
    "snap_steps",
    "snap_seeds",
)
CONTINUAL_FIELDS = ("cl_grid", "cl_points", "cl_steps")


def one_thread(run: Callable[..., dict]) -> Callable[..., dict]:
    """KANs this small are bound by per-op overhead: one thread is faster and steadier."""

    @functools.wraps(run)
    def wrapped(ctx: RunContext, **kw) -> dict:
        with torch_threads(1):
            return run(ctx, **kw)

    return wrapped


def spec_of(cfg: KANClaimsConfig, fields: tuple[str, ...]) -> dict:
    """The cache key of a claim's trainings: the config fields they read (the seed is added
    by ``ctx.shared``)."""
    return {f: getattr(cfg, f) for f in fields}


def train_kan_staircase(
    width: Sequence[int],
    grids: Sequence[int],
    data: dict[str, torch.Tensor],
    steps: int,
    seed: int,
    device: str = "cpu",
) -> tuple[KAN, dict[str, list]]:
    """Train at grids[0], then extend the grid (Sec. 2.4) and keep training; record RMSEs.
    The model and the data live on ``device``."""
    model = KAN(width=width, grid_size=grids[0], seed=seed, device=device)
    data = {k: v.to(device) for k, v in data.items()}
    x = data["train_input"]
    history = {"grid": [], "train": [], "test": [], "curve_train": [], "curve_test": []}
    for i, g in enumerate(grids):
        if i > 0:
            model = model.refine(g, x)
        h = model.fit(data, opt="LBFGS", steps=steps, update_grid=(i == 0), device=device)
        history["curve_train"] += h["train_loss"]
        history["curve_test"] += h["test_loss"]
        history["grid"].append(g)
        history["train"].append(rmse(model, x, data["train_label"]))
        history["test"].append(rmse(model, data["test_input"], data["test_label"]))
    return model, history


# ---------------------------------------------------------------------------------------------
# (a) KAN vs MLP at >= equal parameters


def kan_vs_mlp(cfg: KANClaimsConfig, seed: int, device: str = "cpu") -> dict[str, float]:
    """Per function: test RMSE and parameters of the KAN (grid schedule ``grids_a``) and of the
    narrowest MLP with at least as many parameters (LBFGS for as many steps in all), trained
    on ``device``."""
    lib = toy_functions(cfg.high_dim)
    measured: dict[str, float] = {}
    ratios = []
    for name in cfg.functions:
        f = lib[name]
        data = make_dataset(f.fn, f.n_var, n_train=cfg.n_train, n_test=cfg.n_test, seed=seed)
        kan, _ = train_kan_staircase(f.kan_width, cfg.grids_a, data, cfg.steps, seed, device)
        mlp = mlp_at_least(kan.n_params, n_in=f.n_var, depth=cfg.mlp_depth, seed=seed)
        mlp_steps = cfg.steps * len(cfg.grids_a)
        fit_lbfgs(mlp, data["train_input"], data["train_label"], steps=mlp_steps, device=device)
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
    return measured


@one_thread
def run_kan_vs_mlp(ctx: RunContext) -> dict[str, float]:
    cfg: KANClaimsConfig = ctx.config
    measured = ctx.shared(
        "kan-vs-mlp",
        lambda: kan_vs_mlp(cfg, ctx.seed, ctx.device),
        spec=spec_of(cfg, KAN_VS_MLP_FIELDS),
        codec=JSONCodec(),
    )
    plots.plot_kan_vs_mlp(ctx, cfg.functions, measured)
    return dict(measured)


# ---------------------------------------------------------------------------------------------
# (b) grid extension staircase and scaling exponent


def grid_extension(cfg: KANClaimsConfig, seed: int, device: str = "cpu") -> dict[str, list]:
    """The staircase history of a ``width_b`` KAN on exp(sin(pi x) + y^2) over ``grids_b``."""
    f = toy_functions()["exp_sin"]
    data = make_dataset(f.fn, 2, n_train=cfg.n_train, n_test=cfg.n_test, seed=seed)
    return train_kan_staircase(cfg.width_b, cfg.grids_b, data, cfg.steps, seed, device)[1]


@one_thread
def run_grid_extension(ctx: RunContext, *, noise: float) -> dict[str, float]:
    cfg: KANClaimsConfig = ctx.config
    h = ctx.shared(
        "kan-grid-extension",
        lambda: grid_extension(cfg, ctx.seed, ctx.device),
        spec=spec_of(cfg, GRID_FIELDS),
        codec=JSONCodec(),
    )
    train, test, grids = np.array(h["train"]), np.array(h["test"]), np.array(h["grid"])
    # Staircase: every extension lowers the training loss (allowing `noise`, 1%).
    drops = int(np.sum(train[1:] <= train[:-1] * (1 + noise)))
    # Exponent alpha of test RMSE ~ G^-alpha, fitted up to the best test point (beyond it
    # the test error is dominated by overfitting/noise, as in the paper's Fig. 2.3).
    best = int(np.argmin(test))
    upto = max(best, 1)
    slope = np.polyfit(np.log(grids[: upto + 1]), np.log(test[: upto + 1]), 1)[0]
    plots.plot_grid_extension(ctx, h, grids, test, slope)
    return {
        "extensions": len(grids) - 1,
        "extensions_lowering_train": drops,
        "staircase_fraction": drops / max(len(grids) - 1, 1),
        "test_rmse_first": float(test[0]),
        "test_rmse_best": float(test[best]),
        "test_improvement": float(test[0] / test[best]),
        "alpha": float(-slope),
    }


# ---------------------------------------------------------------------------------------------
# (c) prune + symbolic snapping


def prune_snap_once(
    cfg: KANClaimsConfig,
    data: dict[str, torch.Tensor],
    seed: int,
    plot_path: str | Path | None = None,
    device: str = "cpu",
) -> dict:
    """Sec. 2.5.1: sparsify -> prune -> retrain -> snap -> tune the affine parameters, on
    ``device``. Returns the pruned width's hidden size, the snapped functions' names, test
    R^2 and RMSE and the formula (JSON-able)."""
    data = {k: v.to(device) for k, v in data.items()}
    x = data["train_input"]
    model = KAN(width=cfg.width_c, grid_size=5, seed=seed, device=device)
    model.fit(
        data,
        opt="LBFGS",
        steps=cfg.steps,
        lamb=cfg.lamb,
        lamb_entropy=cfg.lamb_entropy,
        device=device,
    )
    pruned = model.prune(x, threshold=cfg.prune_threshold)
    pruned.fit(data, opt="LBFGS", steps=cfg.steps, device=device)
    if plot_path is not None:
        pruned.plot(x, path=plot_path)
    chosen = auto_symbolic(pruned, x)
    pruned.fit(data, opt="LBFGS", steps=cfg.snap_steps, update_grid=False, device=device)
    pred, y = pruned(data["test_input"]).detach(), data["test_label"]
    r2 = 1 - float(((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    return {
        "hidden": pruned.width[1],
        "names": sorted({name for (_, _, _, name, _) in chosen}),
        "r2": r2,
        "rmse": float(torch.sqrt(((pred - y) ** 2).mean())),
        "formula": symbolic_formula(pruned, var_names=("x", "y"))[0],
    }


def prune_snap_seeds(ctx: RunContext, seed: int) -> Path:
    """A folder with ``runs.json`` (one `prune_snap_once` result per seed ``seed + s``) and the
    first seed's pruned KAN plotted before snapping (``pruned_kan.png``)."""
    cfg: KANClaimsConfig = ctx.config
    f = toy_functions()["exp_sin"]
    data = make_dataset(f.fn, 2, n_train=cfg.n_train, n_test=cfg.n_test, seed=seed)
    folder = ctx.cache.tempdir("paperlab-kan-")
    runs = []
    for s in range(cfg.snap_seeds):
        path = folder / "pruned_kan.png" if s == 0 else None
        runs.append(prune_snap_once(cfg, data, seed + s, plot_path=path, device=ctx.device))
    (folder / "runs.json").write_text(json.dumps(runs))
    return folder


@one_thread
def run_prune_snap(
    ctx: RunContext, *, expected: tuple[str, ...], min_r2: float
) -> dict[str, float]:
    """Recovered: pruned to one hidden node, every ``expected`` function among the snapped
    ones, test R^2 >= ``min_r2`` (criterion constants)."""
    cfg: KANClaimsConfig = ctx.config
    # DEVIATION: the paper shows one interactive run; pruning to [2,1,1] is seed-sensitive
    # (pykan 0.2.8 too), so we report the recovery rate over `snap_seeds` seeds.
    folder = ctx.shared(
        "kan-prune-snap",
        lambda: prune_snap_seeds(ctx, ctx.seed),
        spec=spec_of(cfg, PRUNE_FIELDS),
        codec=FolderCodec(),
    )
    shutil.copyfile(folder / "pruned_kan.png", ctx.plot_path("pruned_kan.png"))
    runs = json.loads((folder / "runs.json").read_text())
    for r in runs:
        r["found"] = sum(1 for fn in expected if fn in r["names"])
        r["recovered"] = r["hidden"] == 1 and r["found"] == len(expected) and r["r2"] >= min_r2
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


CONTINUAL_GRID = 801  # points on [-1, 1] where the snapshots are taken


def continual(cfg: KANClaimsConfig, seed: int, device: str = "cpu") -> dict:
    """A fixed-grid KAN and an MLP of at least its size trained phase by phase on one peak at a
    time (on ``device``); their RMSE on the earlier phases' regions after the last phase, their
    sizes, and their predictions on [-1, 1] after each phase (JSON-able)."""
    kan = KAN(width=(1, 1), grid_size=cfg.cl_grid, seed=seed, device=device)
    mlp = mlp_at_least(kan.n_params, n_in=1, depth=2, seed=seed).to(device)
    grid_x = torch.linspace(-1, 1, CONTINUAL_GRID)[:, None].to(device)
    snapshots = []
    for phase in range(len(PEAK_CENTERS)):
        x, y = peak_phase(phase, cfg.cl_points, seed=seed)
        data = {"train_input": x, "train_label": y, "test_input": x, "test_label": y}
        # the KAN keeps a fixed grid (no grid updates)
        kan.fit(data, opt="LBFGS", steps=cfg.cl_steps, update_grid=False, device=device)
        fit_lbfgs(mlp, x, y, steps=cfg.cl_steps, device=device)
        with torch.no_grad():
            snapshots.append((kan(grid_x).squeeze(1).tolist(), mlp(grid_x).squeeze(1).tolist()))
    # forgetting: error on the regions of phases 0..3 after training on phase 4
    old = [peak_phase(p, cfg.cl_points, seed=seed + 7) for p in range(len(PEAK_CENTERS) - 1)]
    xo, yo = torch.cat([o[0] for o in old]), torch.cat([o[1] for o in old])
    k, m = rmse(kan, xo, yo), rmse(mlp, xo, yo)
    return {
        "old_rmse_kan": k,
        "old_rmse_mlp": m,
        "kan_params": kan.n_params,
        "mlp_params": mlp.n_params,
        "snapshots": snapshots,
    }


@one_thread
def run_continual(ctx: RunContext) -> dict[str, float]:
    cfg: KANClaimsConfig = ctx.config
    r = ctx.shared(
        "kan-continual",
        lambda: continual(cfg, ctx.seed, ctx.device),
        spec=spec_of(cfg, CONTINUAL_FIELDS),
        codec=JSONCodec(),
    )
    grid_x = torch.linspace(-1, 1, CONTINUAL_GRID)[:, None]
    plots.plot_continual(ctx, grid_x, r["snapshots"])
    k, m = r["old_rmse_kan"], r["old_rmse_mlp"]
    return {
        "old_rmse_kan": k,
        "old_rmse_mlp": m,
        "forgetting_ratio_mlp_over_kan": m / k,
        "kan_params": r["kan_params"],
        "mlp_params": r["mlp_params"],
    }
