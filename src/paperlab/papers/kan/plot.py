"""Plot of a KAN's learned activations (arXiv 2404.19756, Fig. 2.4 style).

One small panel per active edge, one block per layer (output layer at the top, as in the
paper), each panel showing phi_l,i,j over the samples its input actually takes; the
panel's opacity grows with the edge's importance |phi|_1 (Eq. 2.17), like pykan's
``tanh(beta * score)`` with beta = 3. Built on matplotlib's Agg canvas: no window, no
pyplot global state, and a file only when ``path`` is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from paperlab.papers.kan.kan import KAN


def _draw_edge(ax: Any, x_i: torch.Tensor, phi: torch.Tensor, alpha: float, title: str) -> None:
    order = torch.argsort(x_i)
    color = "black" if "phi" in title else "tab:red"  # red = snapped to a symbolic function
    x_i, phi = x_i[order].cpu().numpy(), phi[order].cpu().numpy()
    ax.plot(x_i, phi, color=color, alpha=alpha, lw=1.2)
    ax.set_title(title, fontsize=6, alpha=max(alpha, 0.3))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_alpha(max(alpha, 0.15))


def plot_kan(model: KAN, x: torch.Tensor, path: str | None = None, beta: float = 3.0) -> Any:
    """Figure with phi_l,i,j(x_l,i) for every active edge of ``model`` on inputs x (B, n_0).

    Returns a ``matplotlib.figure.Figure``; saves it to ``path`` only if given.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = x.to(next(model.parameters()).device)  # computed on the model's device, drawn on CPU
    with torch.no_grad():
        xs, acts = model.layer_inputs(x), model.forward_with_acts(x)[1]
    widths = model.width
    n_cols = max(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    n_cols = min(n_cols, 10)
    rows_per_layer = [-(-(a * b) // n_cols) for a, b in zip(widths[:-1], widths[1:], strict=True)]
    fig = Figure(figsize=(1.3 * n_cols, 1.2 * sum(rows_per_layer) + 0.4 * len(acts)))
    FigureCanvasAgg(fig)
    outer = fig.add_gridspec(len(acts), 1, height_ratios=rows_per_layer[::-1], hspace=0.5)
    for l, (layer, act) in enumerate(zip(model.layers, acts, strict=True)):
        score = act.abs().mean(dim=0)  # (in, out), Eq. 2.17
        alpha = torch.tanh(beta * score / score.max().clamp_min(1e-12))
        grid = outer[len(acts) - 1 - l].subgridspec(rows_per_layer[l], n_cols, hspace=0.6)
        active = ((layer.mask > 0) | (layer.symbolic.sym_mask > 0)).nonzero().tolist()
        for slot, (i, j) in enumerate(active):
            ax = fig.add_subplot(grid[slot // n_cols, slot % n_cols])
            snapped = bool(layer.symbolic.sym_mask[i, j] > 0)
            label = layer.symbolic.names[i][j] if snapped else "phi"
            _draw_edge(ax, xs[l][:, i], act[:, i, j], float(alpha[i, j]), f"({l},{i},{j}) {label}")
    fig.suptitle(f"KAN {widths}", fontsize=8)
    if path is not None:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig
