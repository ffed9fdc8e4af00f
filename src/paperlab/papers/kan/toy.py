"""The paper's toy functions (Sec. 3.1, Fig. 3.1), the continual-learning task (Sec. 3.4,
Fig. 3.4), and the MLP baseline the claims compare against."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ToyFunction:
    """A target function with the KAN shape the paper uses for it (its KA representation)."""

    name: str
    formula: str
    n_var: int
    kan_width: tuple[int, ...]
    fn: Callable[[torch.Tensor], torch.Tensor]  # (N, n_var) -> (N, 1)


def _j0(x: torch.Tensor) -> torch.Tensor:
    return torch.special.bessel_j0(20 * x[:, :1])


def _exp_sin(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:2] ** 2)


def _xy(x: torch.Tensor) -> torch.Tensor:
    return x[:, :1] * x[:, 1:2]


def _exp_mean_sin2(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.sin(math.pi * x / 2).pow(2).mean(dim=1, keepdim=True))


def _four_var(x: torch.Tensor) -> torch.Tensor:
    a = torch.sin(math.pi * (x[:, :1] ** 2 + x[:, 1:2] ** 2))
    b = torch.sin(math.pi * (x[:, 2:3] ** 2 + x[:, 3:4] ** 2))
    return torch.exp(0.5 * (a + b))


def toy_functions(high_dim: int = 100) -> dict[str, ToyFunction]:
    """The five functions of Fig. 3.1 (``high_dim`` scales the 100-variable one down)."""
    fs = [
        ToyFunction("j0", "J0(20x)", 1, (1, 1), _j0),
        ToyFunction("exp_sin", "exp(sin(pi x) + y^2)", 2, (2, 1, 1), _exp_sin),
        ToyFunction("xy", "x y", 2, (2, 2, 1), _xy),
        ToyFunction(
            "exp_mean_sin2",
            f"exp(mean_i sin^2(pi x_i / 2)), {high_dim} vars",
            high_dim,
            (high_dim, 1, 1),
            _exp_mean_sin2,
        ),
        ToyFunction(
            "four_var",
            "exp((sin(pi(x1^2+x2^2)) + sin(pi(x3^2+x4^2)))/2)",
            4,
            (4, 4, 2, 1),
            _four_var,
        ),
    ]
    return {f.name: f for f in fs}


def make_dataset(
    fn: Callable[[torch.Tensor], torch.Tensor],
    n_var: int,
    *,
    n_train: int = 1000,
    n_test: int = 1000,
    ranges: tuple[float, float] = (-1.0, 1.0),
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Uniform samples on ``ranges``^n_var, as pykan's ``create_dataset`` (keys match)."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = ranges

    def draw(n: int) -> torch.Tensor:
        return torch.rand(n, n_var, generator=g) * (hi - lo) + lo

    x_train, x_test = draw(n_train), draw(n_test)
    return {
        "train_input": x_train,
        "train_label": fn(x_train),
        "test_input": x_test,
        "test_label": fn(x_test),
    }


# --- Sec. 3.4: continual learning on five Gaussian peaks --------------------------------------

PEAK_CENTERS = (-0.8, -0.4, 0.0, 0.4, 0.8)
PEAK_WIDTH = 0.05  # DEVIATION: the paper does not state sigma; narrow peaks as in Fig. 3.4


def peaks(x: torch.Tensor) -> torch.Tensor:
    """Sum of five Gaussian bumps on [-1, 1]; (N, 1) -> (N, 1)."""
    c = torch.tensor(PEAK_CENTERS, dtype=x.dtype, device=x.device)
    return torch.exp(-((x - c) ** 2) / (2 * PEAK_WIDTH**2)).sum(dim=1, keepdim=True)


def peak_phase(i: int, n: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase ``i``: samples only from the i-th fifth of [-1, 1] (around peak i)."""
    g = torch.Generator().manual_seed(seed + 1000 * i)
    lo = -1.0 + 0.4 * i
    x = torch.rand(n, 1, generator=g) * 0.4 + lo
    return x, peaks(x)


# --- the baseline --------------------------------------------------------------------------


class MLP(nn.Module):
    """A plain MLP (SiLU), the baseline of Sec. 3.1."""

    def __init__(self, *, width: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(width[:-1], width[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(width) - 2:
                layers.append(nn.SiLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def mlp_at_least(n_params: int, *, n_in: int, depth: int = 3, seed: int = 0) -> MLP:
    """The narrowest MLP of ``depth`` hidden layers with at least ``n_params`` parameters."""
    for h in range(1, 10_000):
        width = (n_in, *([h] * depth), 1)
        count = sum(a * b + b for a, b in zip(width[:-1], width[1:], strict=True))
        if count >= n_params:
            return MLP(width=width, seed=seed)
    raise ValueError(f"no MLP of depth {depth} reaches {n_params} parameters")


def fit_lbfgs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float = 1.0,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Full-batch LBFGS on MSE, as the paper trains both KANs and MLPs (Sec. 3.1), on
    ``device`` (the model and the data are moved there, as ``core.train.train`` does)."""
    model.to(device)
    x, y = x.to(device), y.to(device)
    opt = torch.optim.LBFGS(
        model.parameters(),
        lr=lr,
        history_size=10,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-32,
        tolerance_change=1e-32,
    )
    losses = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        return loss

    for _ in range(steps):
        loss = opt.step(closure)
        losses.append(float(loss.detach()) ** 0.5)
        if not math.isfinite(losses[-1]):
            break
    return losses


@torch.no_grad()
def rmse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Root mean squared error of ``model`` on (x, y), computed on the model's device."""
    device = next(model.parameters()).device
    return float(torch.sqrt(torch.mean((model(x.to(device)) - y.to(device)) ** 2)))
