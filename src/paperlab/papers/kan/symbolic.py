"""Symbolic snapping of KAN edges (arXiv 2404.19756, Sec. 2.5.1 "Symbolification").

An active edge phi_ij is replaced by ``c * f(a * x + b) + d`` for ``f`` in a small library:
(a, b) by a zooming grid search where, for every (a, b), the best (c, d) is a closed-form
linear regression (vectorised over the whole (a, b) grid), then a short LBFGS polish of
(a, b, c, d). A snapped edge is computed by ``SymbolicEdges`` inside its ``KANLayer`` with
its affine parameters trainable, so that the model can be retrained after snapping (paper:
"retrain to machine precision").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from paperlab.papers.kan.kan import KAN


class SymbolicFn(NamedTuple):
    """One library entry: torch function, formula template (sympy syntax), complexity."""

    fn: Callable[[Tensor], Tensor]
    template: str
    complexity: int


def _safe_sqrt(x: Tensor) -> Tensor:
    return torch.sqrt(x.clamp_min(1e-8))  # defined (as 1e-4) for x <= 0, finite gradient


def _safe_log(x: Tensor) -> Tensor:
    return torch.log(x.clamp_min(1e-6))


def _safe_inv(x: Tensor) -> Tensor:
    return x / (x * x + 1e-8)  # == 1/x for |x| >> 1e-4, smooth and finite at 0


def _safe_exp(x: Tensor) -> Tensor:
    # exp(30) ~ 1e13 keeps a squared error finite in float32 (a line-search probe at
    # exp(80) gives inf loss, then inf * 0 = nan gradients through the clamp)
    return torch.exp(x.clamp_max(30.0))


# DEVIATION: a 12-function library (the paper's Fig. 2.4 examples plus the usual suspects);
# pykan 0.2.8 ships ~30 entries (x^4, x^5, 1/x^n, arcsin, tan, ...). Complexities as pykan.
SYMBOLIC_LIB: dict[str, SymbolicFn] = {
    "0": SymbolicFn(lambda x: x * 0, "0", 0),
    "x": SymbolicFn(lambda x: x, "{}", 1),
    "x^2": SymbolicFn(lambda x: x**2, "({})**2", 2),
    "x^3": SymbolicFn(lambda x: x**3, "({})**3", 3),
    "1/x": SymbolicFn(_safe_inv, "1/({})", 2),
    "sqrt": SymbolicFn(_safe_sqrt, "sqrt({})", 2),
    "exp": SymbolicFn(_safe_exp, "exp({})", 2),
    "log": SymbolicFn(_safe_log, "log({})", 2),
    "sin": SymbolicFn(torch.sin, "sin({})", 2),
    "tanh": SymbolicFn(torch.tanh, "tanh({})", 3),
    "abs": SymbolicFn(torch.abs, "abs({})", 3),
    "gaussian": SymbolicFn(lambda x: torch.exp(-(x**2)), "exp(-({})**2)", 3),
}


class SymbolicEdges(nn.Module):
    """The symbolic branch of one KAN layer: edge (i, j) is ``c f(a x_i + b) + d`` where
    ``sym_mask[i, j] == 1``. Forward loops over the distinct functions in use, never over
    edges: the edges sharing ``f`` are gathered, evaluated together and index-added."""

    def __init__(self, *, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        affine = torch.tensor([1.0, 0.0, 1.0, 0.0]).expand(in_dim, out_dim, 4).clone()
        self.affine = nn.Parameter(affine)  # (in, out, 4) = (a, b, c, d)
        self.register_buffer("sym_mask", torch.zeros(in_dim, out_dim))
        self.names: list[list[str]] = [["0"] * out_dim for _ in range(in_dim)]
        self._groups: dict[str, tuple[Tensor, Tensor]] = {}

    @property
    def has_edges(self) -> bool:
        return bool(self._groups)

    def set_edge(self, i: int, j: int, name: str, affine: Sequence[float]) -> None:
        """Snap edge (i, j) to library function ``name`` with (a, b, c, d)."""
        if name not in SYMBOLIC_LIB:
            raise KeyError(f"unknown symbolic function {name!r}; have {list(SYMBOLIC_LIB)}")
        with torch.no_grad():
            self.affine[i, j] = torch.as_tensor(
                affine, dtype=self.affine.dtype, device=self.affine.device
            )
            self.sym_mask[i, j] = 1.0
        self.names[i][j] = name
        self._rebuild_groups()

    def clear_edge(self, i: int, j: int) -> None:
        self.sym_mask[i, j] = 0.0
        self.names[i][j] = "0"
        self._rebuild_groups()

    def _rebuild_groups(self) -> None:
        groups: dict[str, tuple[list[int], list[int]]] = {}
        for i, j in self.sym_mask.nonzero().tolist():
            ii, jj = groups.setdefault(self.names[i][j], ([], []))
            ii.append(i)
            jj.append(j)
        dev = self.sym_mask.device
        self._groups = {
            n: (torch.tensor(ii, device=dev), torch.tensor(jj, device=dev))
            for n, (ii, jj) in groups.items()
        }

    def _group_values(self, x: Tensor, name: str) -> tuple[Tensor, Tensor, Tensor]:
        ii, jj = self._groups[name]
        a, b, c, d = self.affine[ii, jj].unbind(-1)  # each (n_edges,)
        values = c * SYMBOLIC_LIB[name].fn(a * x[:, ii] + b) + d  # (B, n_edges)
        return ii, jj, values

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, in) -> (B, out), summed over snapped edges only."""
        out = x.new_zeros(x.shape[0], self.out_dim)
        for name in self._groups:
            _, jj, values = self._group_values(x, name)
            out = out.index_add(1, jj, values)
        return out

    def edge_values(self, x: Tensor) -> Tensor:
        """x: (B, in) -> (B, in, out) per-edge values (zero for numeric edges)."""
        out = x.new_zeros(x.shape[0], self.in_dim, self.out_dim)
        for name in self._groups:
            ii, jj, values = self._group_values(x, name)
            out[:, ii, jj] = values
        return out

    def subset(self, in_ids: Tensor, out_ids: Tensor) -> SymbolicEdges:
        """The branch restricted to inputs ``in_ids`` and outputs ``out_ids`` (pruning)."""
        new = SymbolicEdges(in_dim=len(in_ids), out_dim=len(out_ids)).to(self.affine)
        with torch.no_grad():
            new.affine.copy_(self.affine[in_ids][:, out_ids])
            new.sym_mask.copy_(self.sym_mask[in_ids][:, out_ids])
        new.names = [[self.names[i][j] for j in out_ids.tolist()] for i in in_ids.tolist()]
        new._rebuild_groups()
        return new

    def get_extra_state(self) -> dict[str, Any]:  # keeps function names in state_dict
        return {"names": self.names}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.names = [list(row) for row in state["names"]]
        self._rebuild_groups()


# ---------------------------------------------------------------------------------------
# fitting y ~ c f(a x + b) + d
# ---------------------------------------------------------------------------------------
def _r2_grid(x: Tensor, y: Tensor, fn: Callable, a: Tensor, b: Tensor) -> Tensor:
    """R^2 of the best linear (c, d) for every (a, b): x, y (N,), a (A,), b (Bg,) -> (A, Bg)."""
    z = fn(a[:, None, None] * x + b[None, :, None])  # (A, Bg, N)
    z = z - z.mean(-1, keepdim=True)
    yc = y - y.mean()
    cov = (z * yc).sum(-1)
    r2 = cov**2 / ((z * z).sum(-1) * (yc * yc).sum() + 1e-30)
    return torch.nan_to_num(r2, nan=0.0, posinf=0.0, neginf=0.0)


def _linear_fit(z: Tensor, y: Tensor) -> tuple[float, float, float]:
    """Least-squares y ~ c z + d; returns (c, d, r2) with r2 = 1 - SSE/SST."""
    zc, yc = z - z.mean(), y - y.mean()
    var_z, sst = (zc * zc).sum(), (yc * yc).sum()
    c = (zc * yc).sum() / var_z if var_z > 1e-24 else y.new_zeros(())
    d = y.mean() - c * z.mean()
    sse = ((c * z + d - y) ** 2).sum()
    r2 = 1.0 - sse / sst if sst > 1e-24 else y.new_ones(())
    return float(c), float(d), float(r2)


def _polish(x: Tensor, y: Tensor, fn: Callable, params: list[float], steps: int) -> list[float]:
    """A few LBFGS steps on the MSE of c f(a x + b) + d from the grid-search optimum."""
    p = torch.tensor(params, dtype=x.dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([p], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = ((p[2] * fn(p[0] * x + p[1]) + p[3] - y) ** 2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return p.detach().tolist()


def fit_affine(
    x: Tensor,
    y: Tensor,
    fn: Callable[[Tensor], Tensor],
    a_range: tuple[float, float] = (-10.0, 10.0),
    b_range: tuple[float, float] = (-10.0, 10.0),
    grid_points: int = 51,
    iterations: int = 3,
    polish_steps: int = 20,
) -> tuple[float, float, float, float, float]:
    """Fit ``y ~ c * fn(a * x + b) + d``; returns (a, b, c, d, r2).

    Grid search over (a, b) with the closed-form best (c, d) for each point, zoomed in
    ``iterations`` times around the optimum (as pykan's ``fit_params``), then an optional
    LBFGS polish (kept only if it improves R^2). Runs in float64, on the device of ``x``.

    DEVIATION (from pykan): the (a, b) grid acts on the standardised input (x - mean)/std,
    so ``a_range`` is relative to the spread of x. Hidden KAN nodes often live on a small
    range (e.g. [-0.2, 0.1]); on raw x, exp(a x + b) would then need |a| > 10 and lose to
    a far-fetched c tanh(...) with c ~ 500.
    """
    x, y = x.detach().reshape(-1).double(), y.detach().reshape(-1).double()
    mean, std = x.mean(), x.std()
    std = std if std > 1e-12 else torch.ones_like(std)
    z = (x - mean) / std
    (a_lo, a_hi), (b_lo, b_hi) = a_range, b_range
    for _ in range(iterations):
        a_vals = torch.linspace(a_lo, a_hi, grid_points, dtype=x.dtype, device=x.device)
        b_vals = torch.linspace(b_lo, b_hi, grid_points, dtype=x.dtype, device=x.device)
        r2 = _r2_grid(z, y, fn, a_vals, b_vals)  # (A, Bg)
        ia, ib = divmod(int(r2.argmax()), grid_points)
        a_best, b_best = float(a_vals[ia]), float(b_vals[ib])
        # zoom to the neighbouring grid cells (clipped at the boundary)
        a_lo, a_hi = float(a_vals[max(ia - 1, 0)]), float(a_vals[min(ia + 1, grid_points - 1)])
        b_lo, b_hi = float(b_vals[max(ib - 1, 0)]), float(b_vals[min(ib + 1, grid_points - 1)])
    a_best, b_best = a_best / float(std), b_best - a_best * float(mean / std)  # back to x
    c, d, r2_best = _linear_fit(torch.nan_to_num(fn(a_best * x + b_best)), y)
    best = [a_best, b_best, c, d]
    if polish_steps > 0 and 0.0 < r2_best < 1.0:
        cand = _polish(x, y, fn, best, polish_steps)
        if all(math.isfinite(v) for v in cand):
            c2, d2, r2_cand = _linear_fit(torch.nan_to_num(fn(cand[0] * x + cand[1])), y)
            if r2_cand > r2_best:
                best, r2_best = [cand[0], cand[1], c2, d2], r2_cand
    return best[0], best[1], best[2], best[3], r2_best


def canonical_affine(
    name: str, a: float, b: float, c: float, d: float
) -> tuple[float, float, float, float]:
    """Remove the (a, c) or (b, c) redundancy of some library functions, same function:
    c (a x + b)^n = (c a^n)(x + b/a)^n for x, x^2, x^3, 1/x (n = 1, 2, 3, -1), and
    c exp(a x + b) = (c e^b) exp(a x). The grid search leaves e.g. a = -16, c = 0.003 for
    x^2 (R^2 does not depend on a), which makes the first LBFGS steps after snapping
    explode; O(1) parameters keep retraining stable."""
    powers = {"x": 1, "x^2": 2, "x^3": 3, "1/x": -1}
    if name in powers and abs(a) > 1e-8:
        return 1.0, b / a, c * a ** powers[name], d
    if name == "exp" and abs(b) < 30:
        return a, 0.0, c * math.exp(b), d
    return a, b, c, d


class Suggestion(NamedTuple):
    name: str
    r2: float
    complexity: int
    affine: tuple[float, float, float, float]


def rank_library(
    x: Tensor,
    y: Tensor,
    lib: Sequence[str] | None = None,
    *,
    tol: float = 1e-3,
    a_range: tuple[float, float] = (-10.0, 10.0),
    b_range: tuple[float, float] = (-10.0, 10.0),
    polish_steps: int = 0,
) -> list[Suggestion]:
    """Rank library functions for samples (x, y) of one edge; first entry is the pick.

    Rule: let R*_2 be the best R^2. Every function with R^2 >= R*_2 - ``tol`` is "as good";
    among those the lowest complexity wins, ties broken by higher R^2. The remaining
    functions follow by R^2. (pykan instead minimises 0.8 * complexity + 0.2 * log2(1-R^2).)
    """
    names = list(SYMBOLIC_LIB) if lib is None else list(lib)
    unknown = [n for n in names if n not in SYMBOLIC_LIB]
    if unknown or not names:
        raise ValueError(
            f"lib: unknown symbolic functions {unknown} (or an empty list); "
            f"known: {', '.join(SYMBOLIC_LIB)}"
        )
    out = []
    for name in names:
        entry = SYMBOLIC_LIB[name]
        a, b, c, d, r2 = fit_affine(x, y, entry.fn, a_range, b_range, polish_steps=polish_steps)
        out.append(Suggestion(name, r2, entry.complexity, (a, b, c, d)))
    best_r2 = max(s.r2 for s in out)

    def key(s: Suggestion) -> tuple:
        return (0, s.complexity, -s.r2) if s.r2 >= best_r2 - tol else (1, -s.r2, s.complexity)

    return sorted(out, key=key)


def _edge_samples(model: KAN, layer: int, x_samples: Tensor) -> tuple[Tensor, Tensor]:
    """Inputs (B, in) and per-edge activations (B, in, out) of ``layer`` on ``x_samples``
    (moved to the model's device)."""
    x_samples = x_samples.to(next(model.parameters()).device)
    with torch.no_grad():
        x_l = model.layer_inputs(x_samples)[layer]
        return x_l, model.layers[layer].edge_activations(x_l)


def suggest_symbolic(
    model: KAN,
    layer: int,
    i: int,
    j: int,
    x_samples: Tensor,
    lib: Sequence[str] | None = None,
    tol: float = 1e-3,
) -> list[Suggestion]:
    """Library ranked for edge (layer, i, j) on the model inputs ``x_samples`` (B, n_0)."""
    x_l, acts = _edge_samples(model, layer, x_samples)
    return rank_library(x_l[:, i], acts[:, i, j], lib, tol=tol)


def auto_symbolic(
    model: KAN,
    x_samples: Tensor,
    lib: Sequence[str] | None = None,
    r2_threshold: float = 0.0,
    tol: float = 1e-3,
    verbose: bool = False,
) -> list[tuple[int, int, int, str, float]]:
    """Snap every active numeric edge whose best R^2 >= ``r2_threshold``, layer by layer.

    Layer inputs are recomputed after each layer is snapped, so later edges are fitted on
    the inputs they will actually see. The numeric part of a snapped edge is masked off and
    its (a, b, c, d) stay trainable. Returns (layer, i, j, name, r2) for every snapped edge.
    """
    snapped = []
    for l, layer in enumerate(model.layers):
        x_l, acts = _edge_samples(model, l, x_samples)
        for i, j in (layer.mask > 0).nonzero().tolist():
            best = rank_library(x_l[:, i], acts[:, i, j], lib, tol=tol)[0]
            if best.r2 < r2_threshold:
                continue
            *affine, r2 = fit_affine(x_l[:, i], acts[:, i, j], SYMBOLIC_LIB[best.name].fn)
            layer.snap_edge(i, j, best.name, canonical_affine(best.name, *affine))
            snapped.append((l, i, j, best.name, r2))
            if verbose:
                print(f"fixing ({l},{i},{j}) with {best.name}, r2={r2:.6f}")
    return snapped


# ---------------------------------------------------------------------------------------
# formula
# ---------------------------------------------------------------------------------------
def _fmt(v: float, precision: int) -> str:
    return f"{v:.{precision}g}"


def _edge_term(name: str, affine: Tensor, arg: str, precision: int) -> tuple[str | None, float]:
    """String for c f(a arg + b) without its constant, and the constant it adds."""
    a, b, c, d = affine.tolist()
    if name == "0":
        return None, d
    if name == "x":  # c (a u + b) + d, folded
        return f"{_fmt(c * a, precision)}*({arg})", c * b + d
    inner = f"{_fmt(a, precision)}*({arg}) + {_fmt(b, precision)}"
    return f"{_fmt(c, precision)}*{SYMBOLIC_LIB[name].template.format(inner)}", d


def _maybe_sympy(expr: str, precision: int) -> str:
    try:
        import sympy
    except ImportError:
        return expr
    try:
        parsed = sympy.sympify(expr)
        floats = {f: sympy.Float(float(f), precision) for f in parsed.atoms(sympy.Float)}
        return str(parsed.xreplace(floats))
    except (sympy.SympifyError, TypeError, ValueError):
        return expr


def symbolic_formula(
    model: KAN, var_names: Sequence[str] | None = None, precision: int = 4, simplify: bool = True
) -> list[str]:
    """One formula string per output, composing the snapped edges layer by layer.

    Numeric (unsnapped) active edges appear as ``phi_l_i_j(...)``. Numbers are printed to
    ``precision`` significant digits. If sympy is importable and ``simplify``, each formula
    is parsed (and thereby lightly simplified) by sympy; without sympy the raw string is
    returned.
    """
    n_in = model.width[0]
    exprs = list(var_names) if var_names is not None else [f"x_{i + 1}" for i in range(n_in)]
    if len(exprs) != n_in:
        raise ValueError(f"need {n_in} variable names, got {len(exprs)}")
    for l, layer in enumerate(model.layers):
        sym = layer.symbolic
        new_exprs = []
        for j in range(layer.out_dim):
            terms, const = [], 0.0
            for i in range(layer.in_dim):
                if sym.sym_mask[i, j] > 0:
                    affine = sym.affine[i, j].detach()
                    term, d = _edge_term(sym.names[i][j], affine, exprs[i], precision)
                    const += d
                elif layer.mask[i, j] > 0:
                    term = f"phi_{l}_{i}_{j}({exprs[i]})"
                else:
                    term = None
                if term is not None:
                    terms.append(term)
            terms.append(_fmt(const, precision))
            new_exprs.append(" + ".join(terms).replace("+ -", "- "))
        exprs = new_exprs
    return [_maybe_sympy(e, precision) if simplify else e for e in exprs]
