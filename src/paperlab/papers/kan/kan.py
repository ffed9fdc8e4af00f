"""KAN layer and model (arXiv 2404.19756, Sec. 2.2-2.5).

Layout: a layer evaluates the B-spline bases of its inputs once, stored batch-last as
(in, G+k, B) so the recursion's slices are contiguous, views them as (B, in*(G+k)) and does
ONE matmul with the spline weights (in*(G+k), out), plus silu(x) @ base weights (the
efficient-kan formulation). The (B, in, out) tensor of per-edge activations phi_ij(x_i)
that pykan builds on every forward is only built by ``KANLayer.edge_activations``, i.e. for
the sparsity regulariser (when ``lamb > 0``), pruning, snapping and plotting.
"""

from __future__ import annotations

import copy
import json
import math
import os
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.checkpoint import (
    checkpoint_file,
    read_safetensors_metadata,
    save_safetensors_atomic,
)
from paperlab.papers.kan.spline import (
    b_spline_basis_t,
    coef_to_curve,
    curve_to_coef,
    extend_grid,
    interpolate_grid,
    make_grid,
)
from paperlab.papers.kan.symbolic import SymbolicEdges


class KANLayer(nn.Module):
    """One KAN layer: ``in_dim * out_dim`` learnable edges, node j sums its edges (Eq. 2.6).

    Edge (Sec. 2.2, Eq. 2.10): phi_ij(x) = w_b,ij silu(x) + w_s,ij sum_m c_ij,m B_m(x), with
    ``scale_base`` = w_b, ``scale_sp`` = w_s, ``coef`` = c. ``mask`` (in, out) switches
    numeric edges off (pruning, or an edge snapped to a symbolic function in ``symbolic``).
    """

    def __init__(
        self,
        *,
        in_dim: int,
        out_dim: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        noise_scale: float = 0.1,
        base_scale: float = 1.0,
        spline_scale: float = 1.0,
        grid_eps: float = 0.02,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.grid_size, self.spline_order, self.grid_eps = grid_size, spline_order, grid_eps
        n_basis = grid_size + spline_order
        grid = make_grid(in_dim, grid_size, spline_order, grid_range, dtype=dtype)
        self.register_buffer("grid", grid)  # (in, G+2k+1) knots
        # Sec. 2.2 "Initialization scales": w_s = 1, spline(x) ~ 0 with c ~ N(0, sigma^2)
        # (sigma = 0.1), w_b Xavier-uniform. DEVIATION from pykan 0.2.8 only, which uses
        # w_s = 1/sqrt(in), w_b ~ U(-1, 1)/sqrt(in) and noise of std ~0.3/G at the knots.
        coef = noise_scale * torch.randn(in_dim, out_dim, n_basis, generator=generator, dtype=dtype)
        bound = base_scale * math.sqrt(6.0 / (in_dim + out_dim))
        u = torch.rand(in_dim, out_dim, generator=generator, dtype=dtype)
        self.coef = nn.Parameter(coef)  # (in, out, G+k)
        self.scale_base = nn.Parameter((2 * u - 1) * bound)  # (in, out)
        self.scale_sp = nn.Parameter(torch.full((in_dim, out_dim), spline_scale, dtype=dtype))
        self.register_buffer("mask", torch.ones(in_dim, out_dim, dtype=dtype))
        self.symbolic = SymbolicEdges(in_dim=in_dim, out_dim=out_dim).to(dtype)
        self._feature_cache: dict[tuple, tuple] = {}  # see _features

    # --- forward -------------------------------------------------------------------------
    def spline_weight(self) -> Tensor:
        """(in*(G+k), out): masked w_s * c laid out to match the flattened bases."""
        w = (self.mask * self.scale_sp).unsqueeze(-1) * self.coef  # (in, out, G+k)
        return w.permute(0, 2, 1).reshape(-1, self.out_dim)

    def _features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(bases (in, G+k, B), silu(x)) of the layer input.

        Inputs that need no gradient (the data entering the first layer) are cached, keyed
        on the tensor and the grid and both version counters: full-batch LBFGS evaluates the
        same training set ~25 times per step, so the bases are built once per grid update
        instead of once per evaluation. At most two entries (train and test set).
        """
        # inference tensors have no version counter and cannot enter autograd later
        uncacheable = (
            torch.is_inference_mode_enabled() or x.is_inference() or self.grid.is_inference()
        )
        if uncacheable or (x.requires_grad and torch.is_grad_enabled()):
            return b_spline_basis_t(x, self.grid, self.spline_order), F.silu(x)
        key = (id(x), x._version, id(self.grid), self.grid._version)
        hit = self._feature_cache.get(key)
        if hit is not None and hit[0]() is x and hit[1]() is self.grid:
            return hit[2], hit[3]
        features = (b_spline_basis_t(x, self.grid, self.spline_order), F.silu(x))
        if len(self._feature_cache) >= 2:
            self._feature_cache.pop(next(iter(self._feature_cache)))
        self._feature_cache[key] = (weakref.ref(x), weakref.ref(self.grid), *features)
        return features

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, in) -> (B, out) without materialising (B, in, out)."""
        basis, silu = self._features(x)  # (in, G+k, B), (B, in)
        y = basis.flatten(0, 1).T @ self.spline_weight()  # (B, in*(G+k)) @ (in*(G+k), out)
        y = y + silu @ (self.mask * self.scale_base)  # residual silu branch, Eq. 2.10
        if self.symbolic.has_edges:
            y = y + self.symbolic(x)
        return y

    def edge_activations(self, x: Tensor) -> Tensor:
        """Per-edge phi_ij(x_i): x (B, in) -> (B, in, out); ``forward(x) == acts.sum(1)``."""
        basis, silu = self._features(x)  # (in, G+k, B), (B, in)
        spline = torch.bmm(basis.transpose(1, 2), self.coef.transpose(1, 2))  # (in, B, out)
        spline = spline.permute(1, 0, 2)  # (B, in, out)
        acts = self.mask * (self.scale_base * silu.unsqueeze(-1) + self.scale_sp * spline)
        if self.symbolic.has_edges:
            acts = acts + self.symbolic.edge_values(x)
        return acts

    # --- grid ---------------------------------------------------------------------------
    @torch.no_grad()
    def update_grid(self, x: Tensor) -> None:
        """Adapt the grid to the samples x (B, in) and refit c so every spline is kept
        (Sec. 2.4; pykan ``update_grid_from_samples``): knots = grid_eps * uniform(min, max)
        + (1 - grid_eps) * sample quantiles, extended by k knots each side."""
        x_sorted = torch.sort(x, dim=0).values  # (B, in)
        spline = coef_to_curve(x_sorted, self.grid, self.coef, self.spline_order)  # (B, in, out)
        batch, g = x.shape[0], self.grid_size
        ids = [int(batch / g * m) for m in range(g)] + [batch - 1]
        adaptive = x_sorted[ids].T  # (in, G+1)
        lo, hi = adaptive[:, :1], adaptive[:, -1:]
        steps = torch.arange(g + 1, dtype=x.dtype, device=x.device)
        uniform = lo + (hi - lo) / g * steps  # (in, G+1)
        inner = self.grid_eps * uniform + (1 - self.grid_eps) * adaptive
        self.grid.copy_(extend_grid(inner, self.spline_order))
        self.coef.copy_(curve_to_coef(x_sorted, spline, self.grid, self.spline_order))

    @torch.no_grad()
    def refined(self, new_grid_size: int, x: Tensor) -> KANLayer:
        """Grid extension (Sec. 2.4, Eq. 2.16): a copy on a finer grid whose splines are the
        least-squares fits of this layer's splines on the samples x (B, in)."""
        new = copy.deepcopy(self)
        new._feature_cache = {}
        new.grid_size = new_grid_size
        new.grid = interpolate_grid(self.grid, self.spline_order, new_grid_size, x)
        spline = coef_to_curve(x, self.grid, self.coef, self.spline_order)  # (B, in, out)
        new.coef = nn.Parameter(curve_to_coef(x, spline, new.grid, self.spline_order))
        return new

    # --- surgery ------------------------------------------------------------------------
    @torch.no_grad()
    def subset(self, in_ids: Tensor, out_ids: Tensor) -> KANLayer:
        """The layer restricted to inputs ``in_ids`` and outputs ``out_ids`` (pruning)."""
        new = copy.deepcopy(self)
        new._feature_cache = {}
        new.in_dim, new.out_dim = len(in_ids), len(out_ids)
        new.grid = self.grid[in_ids].clone()
        new.mask = self.mask[in_ids][:, out_ids].clone()
        for name in ("coef", "scale_base", "scale_sp"):
            setattr(new, name, nn.Parameter(getattr(self, name)[in_ids][:, out_ids].clone()))
        new.symbolic = self.symbolic.subset(in_ids, out_ids)
        return new

    def snap_edge(self, i: int, j: int, name: str, affine: Sequence[float]) -> None:
        """Replace edge (i, j) by ``c f(a x + b) + d`` (Sec. 2.5.1); numeric part masked."""
        self.symbolic.set_edge(i, j, name, affine)
        self.mask[i, j] = 0.0

    def unsnap_edge(self, i: int, j: int) -> None:
        """Back to the numeric spline edge (pykan ``unfix_symbolic``)."""
        self.symbolic.clear_edge(i, j)
        self.mask[i, j] = 1.0


def sparsity_regularization(acts: Sequence[Tensor], lamb_l1: float, lamb_entropy: float) -> Tensor:
    """Sec. 2.5.1, Eqs. 2.17-2.19 on per-edge activations, one (B, in, out) per layer:
    sum_l mu_1 |Phi_l|_1 + mu_2 S(Phi_l), |phi|_1 = mean_s |phi(x_s)|, S = -sum p log p.

    DEVIATION from pykan 0.2.8 (not from the paper): pykan's default ``edge_forward_spline_n``
    uses std_s(spline part) / (std_s(input) + 0.1) and row + column entropies in log2;
    efficient-kan uses an L1 on the weights. We use the paper's formulas.
    """
    reg = acts[0].new_zeros(())
    for a in acts:
        l1_edge = a.abs().mean(dim=0)  # (in, out), Eq. 2.17
        l1_layer = l1_edge.sum()  # Eq. 2.18
        p = l1_edge / (l1_layer + 1e-8)
        entropy = -(p * torch.log(p + 1e-8)).sum()  # Eq. 2.19
        reg = reg + lamb_l1 * l1_layer + lamb_entropy * entropy
    return reg


KAN_KIND = "KAN"  # the checkpoint kind save_pretrained writes and from_pretrained checks


class KAN(nn.Module):
    """A stack of KAN layers of widths ``width`` = [n_0, n_1, ..., n_L] (Eq. 2.7)."""

    def __init__(
        self,
        *,
        width: Sequence[int],
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        noise_scale: float = 0.1,
        base_scale: float = 1.0,
        spline_scale: float = 1.0,
        grid_eps: float = 0.02,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(
            grid_size=grid_size,
            spline_order=spline_order,
            grid_range=tuple(grid_range),
            noise_scale=noise_scale,
            base_scale=base_scale,
            spline_scale=spline_scale,
            grid_eps=grid_eps,
            seed=seed,
            dtype=dtype,
        )
        gen = torch.Generator().manual_seed(seed)  # local: global RNG state untouched
        layer_kw = {k: v for k, v in self.config.items() if k != "seed"}
        self.layers = nn.ModuleList(
            KANLayer(in_dim=a, out_dim=b, generator=gen, **layer_kw)
            for a, b in zip(width[:-1], width[1:], strict=True)
        )
        # drawn on the CPU with the seeded generator, then moved: the same weights anywhere
        self.to(device)

    @property
    def width(self) -> list[int]:
        return [self.layers[0].in_dim] + [layer.out_dim for layer in self.layers]

    @property
    def n_params(self) -> int:
        """Numeric parameters: c, w_b, w_s of every edge (symbolic affines excluded)."""
        return sum(
            layer.coef.numel() + layer.scale_base.numel() + layer.scale_sp.numel()
            for layer in self.layers
        )

    def _check_input(self, x: Tensor, arg: str = "x") -> None:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.width[0]:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"KAN: {arg} must be (batch, {self.width[0]}), got {shape}")

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, n_0) -> (B, n_L)."""
        self._check_input(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def layer_inputs(self, x: Tensor) -> list[Tensor]:
        """[x_0, x_1, ..., x_L]: the input of every layer, then the output."""
        xs = [x]
        for layer in self.layers:
            xs.append(layer(xs[-1]))
        return xs

    def forward_with_acts(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Forward that also returns every layer's (B, in, out) edge activations."""
        acts = []
        for layer in self.layers:
            acts.append(layer.edge_activations(x))
            x = acts[-1].sum(dim=1)
        return x, acts

    @torch.no_grad()
    def edge_scores(self, x: Tensor) -> list[Tensor]:
        """|phi_l,i,j|_1 = mean over samples of |phi(x_s)| (Eq. 2.17), (in, out) per layer."""
        return [a.abs().mean(dim=0) for a in self.forward_with_acts(x)[1]]

    @torch.no_grad()
    def update_grid(self, x: Tensor) -> None:
        """Adapt every layer's grid to its own inputs, first layer first (Sec. 2.4)."""
        for layer in self.layers:
            layer.update_grid(x)
            x = layer(x)

    # -- checkpoints: safetensors, the config and the snapped functions in the metadata -----

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (a ``.safetensors`` file, or a folder -> ``kan.safetensors``): every
        tensor (splines, grids, masks, symbolic affines) plus, as JSON metadata, the config,
        the widths, each layer's grid size and the names of the snapped symbolic functions,
        so a pruned, refined, snapped KAN comes back exactly."""
        file = checkpoint_file(path, "kan.safetensors")
        config = {**self.config, "dtype": str(self.config["dtype"]).removeprefix("torch.")}
        config["grid_range"] = list(config["grid_range"])
        meta = {
            "paperlab_model": KAN_KIND,
            "config": json.dumps(config),
            "width": json.dumps(self.width),
            "grid_sizes": json.dumps([layer.grid_size for layer in self.layers]),
            "symbolic": json.dumps([layer.symbolic.names for layer in self.layers]),
        }
        tensors = {
            k: v.detach().contiguous()
            for k, v in self.state_dict().items()
            if isinstance(v, Tensor)  # the symbolic names travel in the metadata
        }
        return save_safetensors_atomic(tensors, file, meta)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> KAN:
        """The KAN :meth:`save_pretrained` wrote (checked to be one), on ``device``."""
        from safetensors.torch import load_file

        file = checkpoint_file(path, "kan.safetensors")
        meta = read_safetensors_metadata(file, kind=KAN_KIND)
        config = json.loads(meta["config"])
        config["dtype"] = getattr(torch, config["dtype"])
        width, grid_sizes = json.loads(meta["width"]), json.loads(meta["grid_sizes"])
        names = json.loads(meta["symbolic"])
        model = cls(width=width, **config)
        layer_kw = {k: v for k, v in config.items() if k not in ("seed", "grid_size")}
        model.layers = nn.ModuleList(
            KANLayer(in_dim=a, out_dim=b, grid_size=g, **layer_kw)
            for a, b, g in zip(width[:-1], width[1:], grid_sizes, strict=True)
        )
        state = load_file(str(file))
        for l in range(len(model.layers)):
            state[f"layers.{l}.symbolic._extra_state"] = {"names": names[l]}
        model.load_state_dict(state, strict=True)
        return model.to(device)

    def _with_layers(self, layers: Sequence[KANLayer], **overrides: Any) -> KAN:
        config = {**self.config, **overrides}
        width = [layers[0].in_dim] + [layer.out_dim for layer in layers]
        new = KAN(width=width, **config)
        new.layers = nn.ModuleList(layers)
        return new

    @torch.no_grad()
    def refine(self, new_grid_size: int, x: Tensor) -> KAN:
        """Grid extension (Sec. 2.4): a new KAN on ``new_grid_size`` intervals that
        reproduces this one on the samples x (least squares per spline)."""
        xs = self.layer_inputs(x)
        layers = [layer.refined(new_grid_size, xs[l]) for l, layer in enumerate(self.layers)]
        return self._with_layers(layers, grid_size=new_grid_size)

    @torch.no_grad()
    def prune(self, x: Tensor, threshold: float = 1e-2, edge_threshold: float | None = None) -> KAN:
        """Node pruning (Sec. 2.5.1 "Pruning"): hidden node (l, i) is kept iff its incoming
        score I = max_k |phi_l-1,k,i|_1 and outgoing score O = max_j |phi_l,i,j|_1 both
        exceed ``threshold``. Returns a NEW, smaller KAN (dead nodes removed); if no node
        of a hidden layer survives, its best one (by min(I, O)) is kept. With
        ``edge_threshold``, weak edges of the result are then masked (``prune_edges``)."""
        scores = self.edge_scores(x)
        keep = [torch.arange(self.width[0])]
        for l in range(1, len(self.layers)):
            incoming = scores[l - 1].max(dim=0).values  # (n_l,)
            outgoing = scores[l].max(dim=1).values  # (n_l,)
            score = torch.minimum(incoming, outgoing)
            ids = (score > threshold).nonzero().flatten()
            keep.append(ids if len(ids) else score.argmax().reshape(1))
        keep.append(torch.arange(self.width[-1]))
        layers = [layer.subset(keep[l], keep[l + 1]) for l, layer in enumerate(self.layers)]
        pruned = self._with_layers(layers)
        if edge_threshold is not None:
            pruned.prune_edges(x, edge_threshold)
        return pruned

    @torch.no_grad()
    def prune_edges(self, x: Tensor, threshold: float = 3e-2) -> None:
        """Mask (in place) every edge whose |phi|_1 on x is below ``threshold``."""
        for layer, score in zip(self.layers, self.edge_scores(x), strict=True):
            weak = score < threshold
            layer.mask[weak] = 0.0
            layer.symbolic.sym_mask[weak] = 0.0
            layer.symbolic._rebuild_groups()

    def plot(self, x: Tensor, path: str | None = None) -> Any:
        """Figure of every active edge's phi over its input samples (see ``plot_kan``)."""
        from paperlab.papers.kan.plot import plot_kan

        return plot_kan(self, x, path=path)

    # --- training -----------------------------------------------------------------------
    def _objective(
        self, x: Tensor, y: Tensor, lamb: float, lamb_l1: float, lamb_entropy: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(total, mse, reg); Eq. 2.20: loss = l_pred + lamb (mu_1 sum|Phi|_1 + mu_2 sum S)."""
        if lamb > 0:
            pred, acts = self.forward_with_acts(x)  # materialises (B, in, out): reg only
            reg = sparsity_regularization(acts, lamb_l1, lamb_entropy)
            mse = F.mse_loss(pred, y)
            return mse + lamb * reg, mse, reg
        mse = F.mse_loss(self(x), y)
        return mse, mse, mse.new_zeros(())

    def fit(
        self,
        dataset: dict[str, Tensor],
        *,
        opt: str = "LBFGS",
        steps: int = 100,
        lr: float | None = None,
        lamb: float = 0.0,
        lamb_l1: float = 1.0,
        lamb_entropy: float = 2.0,
        update_grid: bool = True,
        grid_update_num: int = 10,
        stop_grid_update_step: int = 50,
        batch: int = -1,
        seed: int = 0,
        progress: bool = False,
        device: str | torch.device | None = None,
    ) -> dict[str, list[float]]:
        """Train on ``dataset`` (train_input/train_label/test_input/test_label), like pykan's
        ``fit``: LBFGS (history 10, strong Wolfe, up to 20 iterations per step) full-batch
        by default, or Adam; the grid is re-adapted to the (mini)batch every
        ``stop_grid_update_step // grid_update_num`` steps before ``stop_grid_update_step``.
        Returns per-step RMSEs ``train_loss``/``test_loss`` and the regulariser ``reg``.
        Writes no files. ``device``: move the model there first (None: train where it is);
        the dataset always goes to the model's device (minibatches are drawn on the CPU)."""
        keys = ("train_input", "train_label", "test_input", "test_label")
        missing = [k for k in keys if k not in dataset]
        if missing:
            raise ValueError(f"KAN.fit: dataset lacks {missing}; it needs {list(keys)}")
        for k in keys:
            if not torch.isfinite(dataset[k]).all():
                raise ValueError(f"KAN.fit: dataset[{k!r}] has NaN or infinite values")
        for k in ("train_input", "test_input"):
            self._check_input(dataset[k], f"dataset[{k!r}]")
        for split in ("train", "test"):
            n_x, y = dataset[f"{split}_input"].shape[0], dataset[f"{split}_label"]
            if y.dim() != 2 or y.shape != (n_x, self.width[-1]):
                raise ValueError(
                    f"KAN.fit: dataset['{split}_label'] must be ({n_x}, {self.width[-1]}), "
                    f"got {tuple(y.shape)}"
                )
        if device is not None:
            self.to(device)
        p = next(self.parameters())
        x_tr, y_tr, x_te, y_te = (dataset[k].to(p.device, p.dtype) for k in keys)
        n = x_tr.shape[0]
        bs = n if batch == -1 or batch > n else batch
        gen = torch.Generator().manual_seed(seed)
        every = max(1, stop_grid_update_step // max(1, grid_update_num))
        reg_weights = (lamb, lamb_l1, lamb_entropy)
        history: dict[str, list[float]] = {"train_loss": [], "test_loss": [], "reg": []}
        pbar = _progress(steps, progress)
        with _FlatParameters(self._trainable()) as flat:
            optimizer = self._make_optimizer(opt, lr, [flat.theta])
            for step in pbar:
                xb, yb = x_tr, y_tr  # same tensor every step: first-layer bases stay cached
                if bs < n:
                    idx = torch.randperm(n, generator=gen)[:bs].to(x_tr.device)
                    xb, yb = x_tr[idx], y_tr[idx]
                if update_grid and step % every == 0 and step < stop_grid_update_step:
                    self.update_grid(xb)  # writes coef in place: into flat.theta
                snapshot = flat.theta.detach().clone()
                mse, reg = self._train_step(optimizer, flat, xb, yb, reg_weights)
                if not bool(torch.isfinite(flat.theta).all()):  # a probe blew up: undo
                    with torch.no_grad():
                        flat.theta.copy_(snapshot)
                    optimizer = self._make_optimizer(opt, lr, [flat.theta])  # fresh history
                    with torch.no_grad():
                        _, mse, reg = self._objective(xb, yb, *reg_weights)
                with torch.no_grad():
                    test_rmse = F.mse_loss(self(x_te), y_te).sqrt().item()
                history["train_loss"].append(mse.sqrt().item())
                history["test_loss"].append(test_rmse)
                history["reg"].append(reg.item())
                if progress:
                    pbar.set_description(
                        f"train {mse.sqrt():.2e} | test {test_rmse:.2e} | reg {reg:.2e}"
                    )
        return history

    def _train_step(
        self,
        optimizer: torch.optim.Optimizer,
        flat: _FlatParameters,
        x: Tensor,
        y: Tensor,
        reg_weights: tuple,
    ) -> tuple[Tensor, Tensor]:
        """One optimizer step (LBFGS calls the closure up to ~25 times); returns the MSE and
        regulariser of the last evaluation, detached."""
        last: dict[str, Tensor] = {}

        def closure() -> Tensor:
            flat.zero_grad()
            loss, mse, reg = self._objective(x, y, *reg_weights)
            last["mse"], last["reg"] = mse.detach(), reg.detach()
            loss.backward()
            return loss

        optimizer.step(closure)
        return last["mse"], last["reg"]

    def _trainable(self) -> list[nn.Parameter]:
        """All parameters except the symbolic affines of layers with no snapped edge (they
        get no gradient; leaving them out trims LBFGS's per-parameter bookkeeping)."""
        params = []
        for layer in self.layers:
            params += [layer.coef, layer.scale_base, layer.scale_sp]
            if layer.symbolic.has_edges:
                params.append(layer.symbolic.affine)
        return params

    def _make_optimizer(
        self, opt: str, lr: float | None, params: list[Tensor] | None = None
    ) -> torch.optim.Optimizer:
        params = self._trainable() if params is None else params
        if opt == "LBFGS":
            return torch.optim.LBFGS(
                params,
                lr=1.0 if lr is None else lr,
                history_size=10,
                line_search_fn="strong_wolfe",
                tolerance_grad=1e-32,
                tolerance_change=1e-32,
            )
        if opt == "Adam":
            return torch.optim.Adam(params, lr=1e-2 if lr is None else lr)
        raise ValueError(f"opt must be 'LBFGS' or 'Adam', got {opt!r}")


class _FlatParameters:
    """Training-time view of a list of parameters as ONE flat vector ``theta``.

    Inside the ``with`` block every parameter's data and gradient are views into ``theta``
    and ``theta.grad``, and the optimizer is given ``[theta]``: LBFGS then gathers, updates
    and restores one tensor per evaluation instead of looping over every parameter (on these
    small nets its per-parameter bookkeeping costs as much as the model's own forward). The
    values and the optimizer's arithmetic are the same as with the separate parameters (the
    same flat vector torch's LBFGS builds internally). On exit every parameter gets its own
    storage again (checkpoints, deep copies and pruning see ordinary, unshared tensors)."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        self.params = list(params)

    def __enter__(self) -> _FlatParameters:
        with torch.no_grad():
            data = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.theta = nn.Parameter(data)
        self.theta.grad = torch.zeros_like(data)
        offset = 0
        for p in self.params:
            n = p.numel()
            p.data = self.theta.data[offset : offset + n].view_as(p)
            p.grad = self.theta.grad[offset : offset + n].view_as(p)  # accumulated in place
            offset += n
        return self

    def zero_grad(self) -> None:
        self.theta.grad.zero_()  # the parameters' .grad are views of it

    def __exit__(self, *exc: object) -> None:
        for p in self.params:
            p.data = p.data.clone()
            p.grad = p.grad.clone() if p.grad is not None else None
        self.theta.grad = None


def _progress(steps: int, progress: bool) -> Any:
    if not progress:
        return range(steps)
    from tqdm.auto import tqdm

    return tqdm(range(steps), ncols=100)
