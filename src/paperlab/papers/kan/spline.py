"""B-spline machinery for KANs (arXiv 2404.19756, Sec. 2.2 and Fig. 2.2).

A spline of order k on a grid of G intervals is a sum of G + k B-spline bases, which needs
G + 2k + 1 knots: the G + 1 grid points plus k extra knots on each side. All functions here
work on a batch of ``in_dim`` independent grids, one per input coordinate of a KAN layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def extend_grid(grid: Tensor, k: int) -> Tensor:
    """Add ``k`` knots on each side of ``grid`` (in_dim, G+1) -> (in_dim, G+2k+1).

    The step of the extra knots is the grid's mean spacing (last - first) / G, as in pykan,
    so an adaptive (non-uniform) grid is extended by its average interval.
    """
    n_intervals = grid.shape[1] - 1
    h = (grid[:, -1:] - grid[:, :1]) / n_intervals  # (in, 1)
    steps = torch.arange(1, k + 1, dtype=grid.dtype, device=grid.device)  # (k,)
    left = grid[:, :1] - h * steps.flip(0)  # (in, k)
    right = grid[:, -1:] + h * steps  # (in, k)
    return torch.cat([left, grid, right], dim=1)


def make_grid(
    in_dim: int,
    grid_size: int,
    spline_order: int,
    grid_range: Sequence[float] = (-1.0, 1.0),
    *,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Uniform knots on ``grid_range`` with ``grid_size`` intervals, extended by
    ``spline_order`` knots each side: (in_dim, G + 2k + 1)."""
    inner = torch.linspace(grid_range[0], grid_range[1], grid_size + 1, dtype=dtype)
    return extend_grid(inner.expand(in_dim, -1).contiguous(), spline_order)


def b_spline_basis(x: Tensor, grid: Tensor, k: int) -> Tensor:
    """All B-spline bases of order ``k`` at ``x`` by the Cox-de Boor recursion.

    x: (B, in), grid: (in, G+2k+1) -> (B, in, G+k). Bases sum to one on the inner grid
    range [grid[:, k], grid[:, -k-1]) and are non-negative everywhere. The recursion is
    iterative and vectorised over batch, inputs and bases (no Python loop over edges).
    """
    x = x.unsqueeze(-1)  # (B, in, 1)
    t = grid.unsqueeze(0)  # (1, in, n_knots)
    # order 0: indicator of the half-open knot interval [t_m, t_{m+1})
    basis = ((x >= t[..., :-1]) & (x < t[..., 1:])).to(x.dtype)  # (B, in, n_knots - 1)
    for p in range(1, k + 1):
        # B_{m,p} = (x - t_m)/(t_{m+p} - t_m) B_{m,p-1} + (t_{m+p+1} - x)/(t_{m+p+1} - t_{m+1}) B_{m+1,p-1}
        left = (x - t[..., : -(p + 1)]) / (t[..., p:-1] - t[..., : -(p + 1)])
        right = (t[..., p + 1 :] - x) / (t[..., p + 1 :] - t[..., 1:-p])
        basis = left * basis[..., :-1] + right * basis[..., 1:]  # (B, in, n_knots - 1 - p)
    # a degenerate grid (repeated knots, e.g. constant data) gives 0/0: treat as zero
    return torch.nan_to_num(basis)


def coef_to_curve(x: Tensor, grid: Tensor, coef: Tensor, k: int) -> Tensor:
    """Evaluate every spline (i, j) at x: x (B, in), coef (in, out, G+k) -> (B, in, out).

    Materialises (B, in, out); used for grid updates and per-edge activations only.
    """
    basis = b_spline_basis(x, grid, k)  # (B, in, G+k)
    return torch.einsum("bin,ion->bio", basis, coef)


def curve_to_coef(x: Tensor, y: Tensor, grid: Tensor, k: int, ridge: float = 1e-8) -> Tensor:
    """Least-squares spline coefficients with ``spline_i,j(x_i) ~= y_{i,j}``.

    x: (B, in), y: (B, in, out), grid: (in, G+2k+1) -> coef (in, out, G+k).
    Solved per input coordinate through the normal equations in float64 with a small ridge
    relative to the mean diagonal, so bases that no sample touches get a zero coefficient
    (pykan uses ``torch.linalg.lstsq`` with the (in, out) pair expanded; same solution on
    full-rank data, but ours shares one factorisation across the ``out`` right-hand sides).
    """
    basis = b_spline_basis(x, grid, k).to(torch.float64).transpose(0, 1)  # (in, B, n)
    targets = y.to(torch.float64).transpose(0, 1)  # (in, B, out)
    gram = basis.transpose(1, 2) @ basis  # (in, n, n)
    rhs = basis.transpose(1, 2) @ targets  # (in, n, out)
    diag_mean = gram.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-12)  # (in,)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    gram = gram + ridge * diag_mean[:, None, None] * eye
    coef = torch.linalg.solve(gram, rhs)  # (in, n, out)
    return coef.transpose(1, 2).to(y.dtype).contiguous()  # (in, out, n)


def interpolate_grid(grid: Tensor, k: int, new_grid_size: int) -> Tensor:
    """Knots for a finer grid that follow a (possibly adaptive) coarse grid.

    Takes the G + 1 inner knots of ``grid`` (in, G+2k+1), places ``new_grid_size + 1`` points
    at evenly spaced fractional positions along them by linear interpolation (pykan's
    ``initialize_grid_from_parent`` does the same with an order-1 spline), and extends by k.
    """
    inner = grid[:, k : grid.shape[1] - k]  # (in, G+1)
    n_old = inner.shape[1] - 1
    pos = torch.linspace(0, n_old, new_grid_size + 1, dtype=grid.dtype, device=grid.device)
    lo = pos.floor().long().clamp(max=n_old - 1)  # (G'+1,)
    frac = pos - lo.to(grid.dtype)
    new_inner = inner[:, lo] + frac * (inner[:, lo + 1] - inner[:, lo])  # (in, G'+1)
    return extend_grid(new_inner, k)
