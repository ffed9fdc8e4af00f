"""KAN's four headline claims, re-run in miniature (Liu, Wang, Vaidya, Ruehle, Halverson,
Soljacic, Hou, Tegmark 2024, arXiv 2404.19756).

(a) KANs beat MLPs of at least as many parameters on the paper's toy functions (Sec. 3.1,
    Fig. 3.1).
(b) Grid extension gives a staircase of falling loss; test RMSE ~ G^-(k+1) = G^-4 (Sec. 2.4,
    Fig. 2.3).
(c) Sparsification + pruning + symbolic snapping recovers exp(sin(pi x) + y^2) (Sec. 2.5.1).
(d) Continual learning: KANs forget less than MLPs (spline locality, Sec. 3.4, Fig. 3.4).

Each claim trains its own small KANs and MLPs (full-batch LBFGS, one torch thread); their
results go through the run's artifact cache (disk-cached). The runs are in
``experiments.py``, the figures in ``plots.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from paperlab.claims import Claim, PaperClaims, all_of, at_least, at_most
from paperlab.papers.kan import experiments
from paperlab.papers.kan.toy import toy_functions


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
        positive = "high_dim mlp_depth snap_steps cl_grid cl_points cl_steps cl_mlp_width"
        for name in positive.split():
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("width_b", "width_c"):  # on exp(sin(pi x) + y^2): 2 inputs, 1 output
            width = getattr(self, name)
            if len(width) < 2 or width[0] != 2 or width[-1] != 1 or min(width) < 1:
                raise ValueError(f"{name}={width}: widths 2,...,1 (2 inputs, 1 output), e.g. 2,5,1")
        for name in ("lamb", "lamb_entropy", "prune_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")


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


# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost)
MIN_WIN_FRACTION = 0.75  # (a) share of the functions where the KAN's test RMSE is lower
MAX_RMSE_RATIO = 1.0  # (a) geometric mean of KAN / MLP test RMSE
MIN_STAIRCASE = 0.75  # (b) share of the grid extensions that lower the train RMSE ...
STAIRCASE_NOISE = 0.01  # ... "lower" allowing 1% noise
MIN_IMPROVEMENT = 5.0  # (b) test RMSE at the first grid / at the best grid
EXPECTED_FUNCS = ("sin", "x^2", "exp")  # (c) a recovery snaps to these ...
RECOVERY_R2 = 0.999  # ... with this test R^2 (and prunes to [2,1,1])
MIN_RECOVERY = 0.5  # (c) share of the seeds that recover the formula
MIN_FORGETTING_RATIO = 2.0  # (d) MLP / KAN RMSE on the earlier phases' regions

PAPER = PaperClaims(
    config=KANClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="a",
            statement="KANs beat MLPs with at least as many parameters on the toy functions",
            paper_figure="KAN lower test RMSE on all 5 (Fig. 3.1)",
            criterion=all_of(
                at_least("win_fraction", MIN_WIN_FRACTION),
                at_most("geomean_rmse_ratio", MAX_RMSE_RATIO),
            ),
            run=experiments.run_kan_vs_mlp,
            ours="KAN wins {win_fraction:.0%}, RMSE ratio {geomean_rmse_ratio:.2g}",
        ),
        Claim(
            id="b",
            statement="grid extension gives a loss staircase; test RMSE ~ G^-4",
            paper_figure="staircase; alpha = 4 (k=3)",
            criterion=all_of(
                at_least("staircase_fraction", MIN_STAIRCASE),
                at_least("test_improvement", MIN_IMPROVEMENT),
            ),
            run=partial(experiments.run_grid_extension, noise=STAIRCASE_NOISE),
            ours="{test_improvement:.0f}x lower test RMSE; alpha = {alpha:.2f}",
        ),
        Claim(
            id="c",
            statement="prune + snap recovers exp(sin(pi x) + y^2) (share of seeds: [2,1,1], "
            "sin/x^2/exp, R^2 >= 0.999)",
            paper_figure="exact formula, R^2 ~ 1 (Sec. 2.5.1)",
            criterion=at_least("recovery_rate", MIN_RECOVERY, margin=MIN_RECOVERY - 1e-9),
            run=partial(experiments.run_prune_snap, expected=EXPECTED_FUNCS, min_r2=RECOVERY_R2),
            ours="{recovery_rate:.0%} of {seeds:.0f} seeds; {formula}",
        ),
        Claim(
            id="d",
            statement="continual learning: KANs forget less than MLPs (5 Gaussian peaks)",
            paper_figure="KAN keeps old peaks, MLP forgets (Fig. 3.4)",
            criterion=at_least("forgetting_ratio_mlp_over_kan", MIN_FORGETTING_RATIO),
            run=experiments.run_continual,
            ours="old-region RMSE KAN {old_rmse_kan:.3f} vs MLP {old_rmse_mlp:.3f}",
        ),
    ],
)
