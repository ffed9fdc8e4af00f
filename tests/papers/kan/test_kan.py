"""Invariants of the KAN library (arXiv 2404.19756): splines, layer, grid, pruning, snapping."""

import math
import os

import numpy as np
import pytest
import torch

from paperlab.papers.kan import KAN, KANLayer, auto_symbolic, fit_affine, symbolic_formula
from paperlab.papers.kan.spline import (
    b_spline_basis,
    coef_to_curve,
    curve_to_coef,
    make_grid,
)
from paperlab.papers.kan.symbolic import rank_library


@pytest.fixture(autouse=True)
def _one_thread():
    """KAN tensors here are tiny: intra-op threads only add OpenMP barrier waits (10x slower
    on a busy 2-core box), so these tests run single-threaded and restore the setting."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def _target(x: torch.Tensor) -> torch.Tensor:  # the paper's exp(sin(pi x) + y^2)
    return torch.exp(torch.sin(math.pi * x[:, [0]]) + x[:, [1]] ** 2)


def _dataset(f, n_var: int = 2, n: int = 300, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    x_tr = torch.rand(n, n_var, generator=gen) * 2 - 1
    x_te = torch.rand(n, n_var, generator=gen) * 2 - 1
    return dict(train_input=x_tr, train_label=f(x_tr), test_input=x_te, test_label=f(x_te))


def _ref_basis(x: float, t: list[float], m: int, p: int) -> float:
    """Textbook scalar Cox-de Boor recursion."""
    if p == 0:
        return 1.0 if t[m] <= x < t[m + 1] else 0.0
    left = right = 0.0
    if t[m + p] != t[m]:
        left = (x - t[m]) / (t[m + p] - t[m]) * _ref_basis(x, t, m, p - 1)
    if t[m + p + 1] != t[m + 1]:
        right = (t[m + p + 1] - x) / (t[m + p + 1] - t[m + 1]) * _ref_basis(x, t, m + 1, p - 1)
    return left + right


# --- B-splines ----------------------------------------------------------------------------
@pytest.mark.parametrize("grid_size", [5, 40])  # dense recursion / local-support path
def test_basis_partition_of_unity_and_nonnegative(grid_size):
    grid = make_grid(3, grid_size, 3, (-1.0, 1.0), dtype=torch.float64)
    x = torch.rand(500, 3, dtype=torch.float64) * 2 - 1
    basis = b_spline_basis(x, grid, 3)
    assert basis.shape == (500, 3, grid_size + 3)
    assert (basis >= 0).all()
    torch.testing.assert_close(basis.sum(-1), torch.ones(500, 3, dtype=torch.float64))
    ref = [_ref_basis(float(x[0, 1]), grid[1].tolist(), m, 3) for m in range(grid_size + 3)]
    torch.testing.assert_close(basis[0, 1], torch.tensor(ref, dtype=torch.float64))


@pytest.mark.parametrize("grid_size", [5, 40])
def test_basis_gradients_first_and_second_order(grid_size):
    grid = make_grid(2, grid_size, 3, dtype=torch.float64)
    x = (torch.rand(6, 2, dtype=torch.float64) * 2.2 - 1.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: b_spline_basis(z, grid, 3), (x,))
    assert torch.autograd.gradgradcheck(lambda z: b_spline_basis(z, grid, 3), (x,))


def test_curve_to_coef_recovers_coefficients():
    grid = make_grid(2, 6, 3, dtype=torch.float64)
    x = torch.rand(400, 2, dtype=torch.float64) * 2 - 1
    coef = torch.randn(2, 3, 9, dtype=torch.float64)
    fitted = curve_to_coef(x, coef_to_curve(x, grid, coef, 3), grid, 3)
    torch.testing.assert_close(fitted, coef, atol=1e-5, rtol=0)


# --- layer --------------------------------------------------------------------------------
def _layer(in_dim=3, out_dim=2, grid_size=5, seed=0) -> KANLayer:
    gen = torch.Generator().manual_seed(seed)
    return KANLayer(
        in_dim=in_dim,
        out_dim=out_dim,
        grid_size=grid_size,
        noise_scale=0.5,
        generator=gen,
        dtype=torch.float64,
    )


def test_forward_matches_slow_reference():
    layer = _layer()
    with torch.no_grad():
        layer.mask[1, 0] = 0.0
    x = torch.rand(8, 3, dtype=torch.float64) * 2.4 - 1.2
    ref = torch.zeros(8, 2, dtype=torch.float64)
    coef, w_base, w_spline = (p.detach() for p in (layer.coef, layer.scale_base, layer.scale_sp))
    for b in range(8):
        for i in range(3):
            xi, t = float(x[b, i]), layer.grid[i].tolist()
            spline_val = [_ref_basis(xi, t, m, 3) for m in range(layer.coef.shape[-1])]
            for j in range(2):
                spline = sum(float(c) * v for c, v in zip(coef[i, j], spline_val, strict=True))
                silu = xi / (1 + math.exp(-xi))
                w_b, w_s = float(w_base[i, j]), float(w_spline[i, j])
                phi = w_b * silu + w_s * spline
                ref[b, j] += float(layer.mask[i, j]) * phi  # Eq. 2.10 summed into node j
    torch.testing.assert_close(layer(x), ref)


def test_efficient_forward_equals_sum_of_edge_activations():
    layer = _layer(in_dim=4, out_dim=3)
    layer.snap_edge(2, 1, "sin", (2.0, 0.5, 0.7, -0.1))  # symbolic edges are included too
    x = torch.randn(64, 4, dtype=torch.float64)
    acts = layer.edge_activations(x)
    assert acts.shape == (64, 4, 3)
    torch.testing.assert_close(layer(x), acts.sum(1))
    torch.testing.assert_close(acts[:, 2, 1], 0.7 * torch.sin(2.0 * x[:, 2] + 0.5) - 0.1)


def test_update_grid_preserves_function():
    layer = _layer(in_dim=2, out_dim=2)
    x = torch.rand(1000, 2, dtype=torch.float64) * 1.6 - 0.7  # data range != grid range
    with torch.no_grad():  # a smooth spline on the initial grid
        smooth = torch.stack([torch.sin(2 * x), torch.cos(x)], dim=-1)  # (B, in, out)
        layer.coef.copy_(curve_to_coef(x, smooth, layer.grid, 3))
        before = layer(x)
        layer.update_grid(x)
        after = layer(x)
    k = layer.spline_order
    assert torch.allclose(layer.grid[:, k], x.min(0).values, atol=0.05)  # grid follows data
    assert torch.allclose(layer.grid[:, -k - 1], x.max(0).values, atol=0.05)
    torch.testing.assert_close(after, before, atol=5e-3, rtol=0)


def test_refine_preserves_trained_function():
    data = _dataset(_target)
    model = KAN(width=[2, 3, 1], grid_size=5, seed=0)
    model.fit(data, steps=8, stop_grid_update_step=8, grid_update_num=8)
    x = data["train_input"]
    with torch.no_grad():
        y = model(x)
        nested = model.refine(10, x)  # knots nested in the coarse ones: exact
        finer = model.refine(17, x)  # not nested: least-squares approximation
        assert nested.width == model.width and nested.layers[0].coef.shape[-1] == 13
        torch.testing.assert_close(nested(x), y, atol=1e-4, rtol=1e-4)
        assert (finer(x) - y).pow(2).mean().sqrt() < 0.02 * y.std()


# --- model --------------------------------------------------------------------------------
def test_prune_removes_dead_hidden_nodes():
    model = KAN(width=[2, 4, 1], grid_size=5, seed=0)
    with torch.no_grad():
        model.layers[1].scale_base[2] = 0.0  # node 2: nothing goes out
        model.layers[1].scale_sp[2] = 0.0
        model.layers[0].mask[:, 0] = 0.0  # node 0: nothing comes in
        model.layers[1].coef[0] = 0.0  # ... and its constant output is zero too
    x = torch.rand(200, 2) * 2 - 1
    pruned = model.prune(x)
    assert pruned.width == [2, 2, 1]
    assert pruned is not model and model.width == [2, 4, 1]
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x))


def test_fit_reduces_loss_lbfgs_and_adam():
    data = _dataset(_target)
    lbfgs = KAN(width=[2, 3, 1], seed=0).fit(data, steps=5)
    adam = KAN(width=[2, 3, 1], seed=0).fit(data, opt="Adam", steps=40, lr=2e-2, batch=64)
    for hist in (lbfgs, adam):
        assert set(hist) == {"train_loss", "test_loss", "reg"}
        assert hist["test_loss"][-1] < 0.5 * hist["test_loss"][0]
    assert lbfgs["train_loss"][-1] < 0.1


def test_fit_equals_plain_lbfgs_over_the_separate_parameters():
    """fit trains one flat view of the parameters (fewer tensors for LBFGS to loop over): the
    same steps as torch's LBFGS over the separate parameters, and afterwards every parameter
    owns its storage again (a checkpoint must not see shared tensors)."""
    data = _dataset(_target)
    model = KAN(width=[2, 3, 1], seed=0)
    hist = model.fit(data, steps=3, update_grid=False)
    ref = KAN(width=[2, 3, 1], seed=0)
    params = [p for layer in ref.layers for p in (layer.coef, layer.scale_base, layer.scale_sp)]
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        history_size=10,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-32,
        tolerance_change=1e-32,
    )
    x, y = data["train_input"], data["train_label"]

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(ref(x), y)
        loss.backward()
        return loss

    for step in range(3):
        opt.step(closure)
        with torch.no_grad():
            test = torch.nn.functional.mse_loss(ref(data["test_input"]), data["test_label"])
        assert hist["test_loss"][step] == pytest.approx(test.sqrt().item(), rel=1e-5, abs=1e-7)
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    ptrs = [p.data_ptr() for p in model.parameters()]
    assert len(set(ptrs)) == len(ptrs) and all(p.grad is not None for p in params)


def test_sparsity_regularization_decreases():
    data = _dataset(_target)
    model = KAN(width=[2, 5, 1], seed=0)
    hist = model.fit(data, steps=8, lamb=0.05, update_grid=False)
    assert hist["reg"][0] > 0
    assert hist["reg"][-1] < 0.8 * hist["reg"][0]


def test_same_seed_same_result():
    data = _dataset(_target)

    def run(seed: int) -> tuple[list[float], torch.Tensor]:
        model = KAN(width=[2, 3, 1], seed=seed)
        hist = model.fit(data, opt="Adam", steps=10, batch=50, seed=seed)
        return hist["train_loss"], model.layers[0].coef.detach().clone()

    (h0, c0), (h1, c1), (h2, c2) = run(0), run(0), run(1)
    assert h0 == h1 and torch.equal(c0, c1)
    assert h0 != h2 and not torch.equal(c0, c2)


def test_no_files_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _dataset(_target, n=100)
    model = KAN(width=[2, 3, 1], seed=0)
    model.fit(data, steps=2, lamb=0.01)
    model = model.refine(10, data["train_input"]).prune(data["train_input"])
    model.plot(data["train_input"])
    assert os.listdir(tmp_path) == []


def test_plot_one_panel_per_active_edge(tmp_path):
    model = KAN(width=[2, 3, 1], seed=0)
    with torch.no_grad():
        model.layers[0].mask[0, 1] = 0.0
    fig = model.plot(torch.rand(50, 2) * 2 - 1, path=str(tmp_path / "kan.png"))
    assert len(fig.axes) == 5 + 3
    assert (tmp_path / "kan.png").stat().st_size > 0


def test_state_dict_round_trip_keeps_symbolic_edges():
    model = KAN(width=[2, 2, 1], seed=0)
    model.layers[1].snap_edge(0, 0, "exp", (1.0, 0.0, 1.0, 0.0))
    clone = KAN(width=[2, 2, 1], seed=1)
    clone.load_state_dict(model.state_dict())
    x = torch.rand(10, 2)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x))


# --- symbolic -----------------------------------------------------------------------------
def test_fit_affine_recovers_sin():
    x = torch.linspace(-1, 1, 200)
    y = 2 * torch.sin(3 * x + 1) + 0.5
    a, b, c, d, r2 = fit_affine(x, y, torch.sin)
    assert r2 > 0.999
    assert (c * torch.sin(a * x + b) + d - y).abs().max() < 1e-3


@pytest.mark.parametrize(
    ("fn", "name"),
    [
        (lambda x: x**2, "x^2"),
        (lambda x: 0.3 * x + 0.1, "x"),
        (lambda x: torch.exp(1.5 * x), "exp"),
        (lambda x: torch.sin(math.pi * x), "sin"),
    ],
)
def test_rank_library_picks_the_known_function(fn, name):
    x = torch.linspace(-1, 1, 201)
    assert rank_library(x, fn(x))[0].name == name


def test_auto_symbolic_snaps_retrains_and_formula_evaluates():
    def f(x):
        return x[:, [0]] ** 2 + torch.sin(math.pi * x[:, [1]])

    data = _dataset(f, n=400)
    model = KAN(width=[2, 1], grid_size=5, seed=0)
    model.fit(data, steps=10)
    snapped = auto_symbolic(model, data["train_input"], lib=["x", "x^2", "sin", "exp", "tanh"])
    assert {(l, i, j): name for l, i, j, name, _ in snapped} == {
        (0, 0, 0): "x^2",
        (0, 1, 0): "sin",
    }
    assert model.layers[0].mask.sum() == 0  # numeric part masked off
    hist = model.fit(data, steps=5, update_grid=False)  # tunes the affine parameters
    assert hist["test_loss"][-1] < 1e-4
    (formula,) = symbolic_formula(model, var_names=("x", "y"), precision=10, simplify=False)
    assert "sin" in formula and "**2" in formula
    x_np = data["test_input"].double().numpy()
    value = eval(formula, {"sin": np.sin, "exp": np.exp, "x": x_np[:, 0], "y": x_np[:, 1]})
    with torch.no_grad():
        np.testing.assert_allclose(value, model(data["test_input"])[:, 0].numpy(), atol=1e-4)


# --- reference: pykan 0.2.8 ---------------------------------------------------------------
def test_layer_matches_pykan():
    pykan_layer = pytest.importorskip("kan.KANLayer")
    torch.manual_seed(0)
    theirs = pykan_layer.KANLayer(in_dim=3, out_dim=4, num=5, k=3, noise_scale=0.5)
    ours = KANLayer(in_dim=3, out_dim=4, grid_size=5, spline_order=3)
    with torch.no_grad():
        for name in ("coef", "scale_base", "scale_sp"):
            getattr(ours, name).copy_(getattr(theirs, name))
        torch.testing.assert_close(ours.grid, theirs.grid.data)
        x = torch.rand(256, 3) * 2.4 - 1.2
        torch.testing.assert_close(ours(x), theirs(x)[0], atol=1e-5, rtol=1e-5)
        # grid update from samples: same knots, same function up to the lstsq solver
        samples = torch.randn(512, 3) * 0.6
        ours.update_grid(samples)
        theirs.update_grid_from_samples(samples)
        torch.testing.assert_close(ours.grid, theirs.grid.data)
        torch.testing.assert_close(ours(samples), theirs(samples)[0], atol=1e-4, rtol=1e-4)


def test_fit_undoes_a_step_that_produced_nan(monkeypatch):
    data = _dataset(_target, n=100)
    model = KAN(width=[2, 2, 1], seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    objective = KAN._objective

    def nan_objective(self, *args):
        total, mse, reg = objective(self, *args)
        return total * float("nan"), mse, reg

    monkeypatch.setattr(KAN, "_objective", nan_objective)
    model.fit(data, steps=2, update_grid=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_save_load_keeps_pruned_refined_snapped_model(tmp_path):
    """safetensors round trip of a KAN after prune, refine and snapping: same outputs, same
    formula, same widths and grid; a file of another kind is refused."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, 2, generator=gen) * 2 - 1
    data = {"train_input": x, "train_label": torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2}
    data |= {"test_input": x[:50], "test_label": data["train_label"][:50]}
    model = KAN(width=(2, 3, 1), grid_size=5, seed=1)
    model.fit(data, opt="LBFGS", steps=3)
    model = model.prune(x, threshold=0.0).refine(7, x)
    auto_symbolic(model, x, lib=["x", "sin", "x^2"])
    path = model.save_pretrained(tmp_path / "kan")
    loaded = KAN.from_pretrained(tmp_path / "kan")
    assert path.name == "kan.safetensors"
    assert torch.equal(model(x), loaded(x))
    assert symbolic_formula(loaded) == symbolic_formula(model)
    assert loaded.width == model.width and [la.grid_size for la in loaded.layers] == [7, 7]
    other = tmp_path / "other.safetensors"
    from paperlab.core.checkpoint import save_safetensors_atomic

    save_safetensors_atomic({"w": torch.zeros(1)}, other, {"paperlab_model": "VQTokenizer"})
    with pytest.raises(ValueError, match="expected a KAN checkpoint"):
        KAN.from_pretrained(other)


def test_bad_inputs_are_one_error_naming_them():
    model = KAN(width=(2, 3, 1), seed=0)
    with pytest.raises(ValueError, match=r"x must be \(batch, 2\), got \(4, 3\)"):
        model(torch.rand(4, 3))
    ok = {"train_input": torch.rand(8, 2), "train_label": torch.rand(8, 1)}
    ok |= {"test_input": torch.rand(4, 2), "test_label": torch.rand(4, 1)}
    with pytest.raises(ValueError, match="lacks \\['test_input', 'test_label'\\]"):
        model.fit({k: ok[k] for k in ("train_input", "train_label")}, steps=1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.fit(ok | {"train_label": torch.full((8, 1), float("nan"))}, steps=1)
    with pytest.raises(ValueError, match=r"'train_label'\] must be \(8, 1\)"):
        model.fit(ok | {"train_label": torch.rand(8)}, steps=1)
    with pytest.raises(ValueError, match="unknown symbolic functions \\['sinn'\\]"):
        auto_symbolic(model, torch.rand(10, 2), lib=["sinn"])
