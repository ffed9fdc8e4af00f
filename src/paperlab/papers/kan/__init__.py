"""KAN: Kolmogorov-Arnold Networks (Liu et al., arXiv 2404.19756).

Idea: by the Kolmogorov-Arnold representation theorem a continuous multivariate function is
a composition of sums of univariate functions. A KAN layer puts a learnable univariate
function on every edge, phi(x) = w_b silu(x) + w_s spline(x) with a cubic B-spline on a
grid of G intervals, and a node only sums its incoming edges (Sec. 2.2). The grid follows
the data and can be refined during training by least squares ("grid extension", Sec. 2.4).
For interpretability (Sec. 2.5) training adds an L1 + entropy penalty on the edge
activations, weak nodes are pruned, and each remaining edge is snapped to a symbolic
function c f(a x + b) + d, giving a closed-form formula.

Claims (Sec. 3-4): on toy functions KANs reach lower test RMSE than MLPs with fewer
parameters; test RMSE scales as G^-(k+1) = G^-4 with the grid size for smooth targets;
prune + snap recovers formulas such as exp(sin(pi x) + y^2).

Public API: ``KAN``, ``KANLayer``, ``auto_symbolic``, ``suggest_symbolic``, ``fit_affine``,
``symbolic_formula``, ``SYMBOLIC_LIB``, ``plot_kan`` (see README.md for the differences
from the paper and from pykan).
"""

from paperlab.papers.kan.kan import KAN, KANLayer, sparsity_regularization
from paperlab.papers.kan.plot import plot_kan
from paperlab.papers.kan.symbolic import (
    SYMBOLIC_LIB,
    auto_symbolic,
    fit_affine,
    suggest_symbolic,
    symbolic_formula,
)

__all__ = [
    "KAN",
    "KANLayer",
    "SYMBOLIC_LIB",
    "auto_symbolic",
    "fit_affine",
    "plot_kan",
    "sparsity_regularization",
    "suggest_symbolic",
    "symbolic_formula",
]
