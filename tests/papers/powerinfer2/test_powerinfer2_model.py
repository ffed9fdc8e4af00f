"""PowerInfer-2, model side: ReLU decoder, activation profile, predictors, offline planner."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from paperlab.core.device import torch_threads
from paperlab.core.llama import Llama
from paperlab.papers.powerinfer2.engine import corpus_windows
from paperlab.papers.powerinfer2.planner import (
    Plan,
    covered_share,
    hot_first_order,
    plan_hot_neurons,
)
from paperlab.papers.powerinfer2.predictor import (
    ActivationPredictor,
    load_predictors,
    predictor_metrics,
    save_predictors,
    train_predictors,
)
from paperlab.papers.powerinfer2.profile import (
    ActivationProfile,
    activation_masks,
    ffn_inputs,
    profile_activations,
)
from paperlab.papers.powerinfer2.sparse_model import (
    PRESETS,
    ReluModelConfig,
    fit_relu_model,
    val_loss,
)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def tiny_model(seed: int = 0, **overrides) -> Llama:
    torch.manual_seed(seed)
    cfg = ReluModelConfig.preset("tiny", **{"dim": 16, "ffn_hidden": 24, **overrides})
    return Llama(cfg.llama_config()).eval()


# ---------------------------------------------------------------------------------------------
# the ReLU decoder


def test_config_presets_and_validation():
    assert set(PRESETS) == {"tiny", "default", "full"}
    cfg = ReluModelConfig()
    llama = cfg.llama_config()
    assert llama.hidden_act == "relu" and llama.vocab_size == 256
    model = Llama(llama)
    ffn = sum(p.numel() for layer in model.layers for p in layer.mlp.parameters())
    assert ffn == 3 * cfg.dim * cfg.ffn_hidden * cfg.n_layers
    assert ffn / model.num_params() > 0.75  # the FFN is the bulk of the weights
    for bad in ({"dim": 0}, {"n_heads": 3}, {"lr": -1.0}, {"seq_len": 2048}):
        with pytest.raises(ValueError, match="ReluModelConfig"):
            ReluModelConfig(**bad)
    with pytest.raises(ValueError, match="unknown scale"):
        ReluModelConfig.preset("huge")


def test_corpus_windows_are_seeded_and_split():
    batches = corpus_windows(3, batch_size=4, seq_len=16, seed=3)
    assert len(batches) == 3 and batches[0].shape == (4, 16) and batches[0].dtype == torch.int64
    assert all(
        torch.equal(a, b)
        for a, b in zip(batches, corpus_windows(3, batch_size=4, seq_len=16, seed=3), strict=True)
    )
    assert not torch.equal(batches[0], batches[1])
    val = corpus_windows(1, batch_size=4, seq_len=16, seed=3, split="val")
    assert not torch.equal(batches[0], val[0])


def test_tiny_training_lowers_the_loss():
    cfg = ReluModelConfig.preset("tiny", steps=30, lr=3e-3)
    model, info = fit_relu_model(cfg, seed=0)
    assert model.config.hidden_act == "relu" and not model.training
    history = info["history"]["loss"]
    assert history[-1] < history[0] - 0.5 and math.isfinite(info["val_loss"])
    assert info["seconds"] > 0 and info["val_loss"] == val_loss(model, cfg)
    again, _ = fit_relu_model(cfg, seed=0)  # no cache here: trained again, the same weights
    assert again is not model and torch.allclose(again.lm_head.weight, model.lm_head.weight)


# ---------------------------------------------------------------------------------------------
# profile


def brute_force_counts(model: Llama, ids: torch.Tensor) -> list[list[int]]:
    """FFN inputs rebuilt layer by layer by hand, then neuron-by-neuron dot products."""
    counts = []
    with torch.no_grad():
        h = model.embed(ids)
        cos, sin = model.rotary_emb(0, ids.shape[1])
        for layer in model.layers:
            attn = layer.self_attn(layer.input_layernorm(h), cos, sin, None, True)
            x = layer.post_attention_layernorm(h + attn).reshape(-1, h.shape[-1])
            w = layer.mlp.gate_proj.weight
            counts.append(
                [sum(float(w[i] @ x[t]) > 0 for t in range(len(x))) for i in range(w.shape[0])]
            )
            h = layer(h, cos, sin, None, True)
    return counts


def test_profile_counts_equal_brute_force():
    model = tiny_model()
    ids = torch.randint(256, (2, 8), generator=torch.Generator().manual_seed(1))
    xs = ffn_inputs(model, ids)
    assert len(xs) == 2 and xs[0].shape == (16, 16)
    masks = activation_masks(model, xs)
    assert masks[1].shape == (16, 24) and masks[1].dtype == torch.bool
    prof = profile_activations(model, [ids[:1], (ids[1:], None)])  # (x, y) pairs work too
    assert prof.n_tokens == 16
    assert [c.tolist() for c in prof.counts] == brute_force_counts(model, ids)
    assert [c.tolist() for c in prof.counts] == [m.sum(0).tolist() for m in masks]


def test_sparsity_and_share_covering_on_hand_made_counts():
    counts = torch.tensor([60, 20, 10, 5, 5, 0, 0, 0, 0, 0])
    prof = ActivationProfile(counts=[counts, torch.full((10,), 10)], n_tokens=100)
    assert prof.sparsity() == pytest.approx([0.9, 0.9])
    assert prof.share_covering(0.8) == pytest.approx([0.2, 0.8])  # 60+20 = 80%; uniform
    assert prof.share_covering(0.81)[0] == pytest.approx(0.3)
    assert prof.frequency(0)[0].item() == pytest.approx(0.6)
    # a Zipf law over 1000 neurons: the answer by a plain loop
    zipf = torch.tensor([round(10_000 / i) for i in range(1, 1001)])
    total, running, k = int(zipf.sum()), 0, 0
    while running < 0.8 * total:
        running, k = running + int(zipf[k]), k + 1
    power = ActivationProfile(counts=[zipf[torch.randperm(1000)]], n_tokens=10_000)
    assert power.share_covering(0.8) == pytest.approx([k / 1000])
    assert 0.2 < k / 1000 < 0.5  # a heavy skew, far from the 0.8 of a uniform layer
    with pytest.raises(ValueError, match="q="):
        prof.share_covering(0.0)
    with pytest.raises(ValueError, match="counts"):
        ActivationProfile(counts=[torch.tensor([101])], n_tokens=100)


def test_profile_save_load_and_damaged_files(tmp_path):
    prof = ActivationProfile(counts=[torch.tensor([3, 0, 1]), torch.tensor([2, 2, 0])], n_tokens=4)
    path = prof.save(tmp_path / "profile.safetensors")
    back = ActivationProfile.load(path)
    assert back.n_tokens == 4
    assert all(torch.equal(a, b) for a, b in zip(back.counts, prof.counts, strict=True))
    data = path.read_bytes()
    cases = {"truncated": data[: len(data) - 7], "garbage": b"\x00not a profile" * 3}
    for name, content in cases.items():
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(content)
        with pytest.raises(ValueError) as err:
            ActivationProfile.load(bad)
        assert "\n" not in str(err.value) and str(bad) in str(err.value)
    with pytest.raises(ValueError, match="no activation profile"):
        ActivationProfile.load(tmp_path / "missing.safetensors")
    other = save_predictors([ActivationPredictor(dim=4, ffn_hidden=3, rank=2)], tmp_path / "p")
    with pytest.raises(ValueError, match="expected a PowerInfer2ActivationProfile"):
        ActivationProfile.load(other)


# ---------------------------------------------------------------------------------------------
# predictors


class FixedPredictor:
    def __init__(self, mask):
        self.mask = mask

    def predict(self, x, threshold=0.5):
        return self.mask


def test_predictor_metrics_by_hand():
    active = torch.tensor([[True, False, True, False]])
    predicted = torch.tensor([[True, True, False, False]])
    m = predictor_metrics(FixedPredictor(predicted), torch.zeros(1, 2), active)
    assert m == pytest.approx(
        dict(recall=0.5, precision=0.5, predicted_share=0.5, true_share=0.5, accuracy=0.5)
    )
    everything = predictor_metrics(FixedPredictor(torch.ones(1, 4, dtype=torch.bool)), None, active)
    assert everything["recall"] == 1.0 and everything["precision"] == 0.5


def test_predictor_training_raises_recall_and_pos_weight_favours_it():
    model = tiny_model(seed=2)
    ids = corpus_windows(4, batch_size=8, seq_len=16, seed=0)
    val = corpus_windows(1, batch_size=8, seq_len=16, seed=0, split="val")
    kwargs = dict(rank=32, lr=1e-2, val_batches=val, batch_tokens=128)
    _, before = train_predictors(model, ids, steps=1, **kwargs)
    nets, after = train_predictors(model, ids, steps=150, **kwargs)
    _, weighted = train_predictors(model, ids, steps=150, pos_weight=4.0, **kwargs)
    for b, a, w in zip(before, after, weighted, strict=True):
        assert a["accuracy"] > b["accuracy"] + 0.1 and a["accuracy"] > 0.85
        assert a["recall"] > 0.8 and w["recall"] > a["recall"]
    assert nets[0](torch.zeros(3, 16)).shape == (3, 24)
    assert nets[0].predict(torch.zeros(3, 16), threshold=0.3).dtype == torch.bool
    with pytest.raises(ValueError, match="threshold"):
        nets[0].predict(torch.zeros(1, 16), threshold=1.0)
    with pytest.raises(ValueError, match="ranks"):
        train_predictors(model, ids, rank=[4], steps=1)


def test_predictors_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    nets = [ActivationPredictor(dim=8, ffn_hidden=12, rank=r) for r in (4, 6)]
    path = save_predictors(nets, tmp_path / "predictors.safetensors")
    back = load_predictors(path)
    x = torch.randn(5, 8)
    assert [p.rank for p in back] == [4, 6]
    assert all(torch.equal(a(x), b(x)) for a, b in zip(nets, back, strict=True))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="predictor"):
        load_predictors(path)


# ---------------------------------------------------------------------------------------------
# planner


def brute_force_best(counts: list[torch.Tensor], k: int) -> int:
    flat = torch.cat(counts).tolist()
    return max(
        sum(c) for size in range(min(k, len(flat)) + 1) for c in itertools.combinations(flat, size)
    )


def test_greedy_plan_is_optimal_and_respects_the_budget():
    rng = random.Random(0)
    for _ in range(40):
        n_layers, width = rng.randint(1, 3), rng.randint(1, 5)
        counts = [
            torch.tensor([rng.choice([0, 1, 2, 3, 5, 8, 8, 20]) for _ in range(width)])
            for _ in range(n_layers)
        ]
        prof = ActivationProfile(counts=counts, n_tokens=20)
        bundle, budget = rng.randint(1, 64), rng.randint(1, 600)
        share = rng.choice([0.0, 0.25, 0.5, 1.0])
        plan = plan_hot_neurons(prof, budget_bytes=budget, bundle_bytes=bundle, hot_share=share)
        k = int(share * budget) // bundle
        covered = sum(int(c[h].sum()) for c, h in zip(counts, plan.hot, strict=True))
        assert covered == brute_force_best(counts, k)
        assert plan.hot_bytes == plan.n_hot * bundle <= share * budget
        assert plan.hot_bytes + plan.cold_cache_bytes == budget
        for c, h in zip(counts, plan.hot, strict=True):
            assert torch.equal(h, torch.unique(h)) and h.dtype == torch.int64  # sorted, unique
            assert bool((c[h] > 0).all())  # never-active neurons are not pinned
        assert plan.covered == pytest.approx(covered_share(prof, plan.hot))


def test_plan_covered_shares_and_hot_first_order():
    prof = ActivationProfile(
        counts=[torch.tensor([1, 9, 0, 5]), torch.tensor([8, 0, 2, 2])], n_tokens=10
    )
    plan = plan_hot_neurons(prof, budget_bytes=600, bundle_bytes=100, hot_share=0.5)
    assert [h.tolist() for h in plan.hot] == [[1, 3], [0]]  # 9, 8, 5 of 9, 8, 5, 2, 2, 1
    assert plan.covered == pytest.approx([14 / 15, 8 / 12])
    assert (plan.hot_bytes, plan.cold_cache_bytes) == (300, 300)
    order = hot_first_order(prof)
    assert [o.tolist() for o in order] == [[1, 3, 0, 2], [0, 2, 3, 1]]  # ties by id
    assert Plan.from_json(plan.to_json()).to_json() == plan.to_json()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(budget_bytes=0),
        dict(budget_bytes=-5),
        dict(budget_bytes=1.5),
        dict(bundle_bytes=0),
        dict(hot_share=1.5),
    ],
)
def test_planner_rejects_bad_input(kwargs):
    prof = ActivationProfile(counts=[torch.tensor([1, 2])], n_tokens=2)
    args = {**dict(budget_bytes=100, bundle_bytes=10), **kwargs}
    with pytest.raises(ValueError, match="plan_hot_neurons"):
        plan_hot_neurons(prof, **args)
    for bad in (
        {"hot": [[2, 1]], "hot_bytes": 1, "cold_cache_bytes": 0, "covered": [1.0]},
        {"hot": [[1]]},
    ):
        with pytest.raises(ValueError, match="Plan.from_json"):
            Plan.from_json(bad)


def test_plot_activation_profile(tmp_path):
    from paperlab.papers.powerinfer2.plots_model import plot_activation_profile

    zipf = torch.tensor([round(1000 / i) for i in range(1, 65)])
    prof = ActivationProfile(counts=[zipf, torch.flip(zipf, [0])], n_tokens=1000)
    fig = plot_activation_profile(prof, tmp_path / "profile.png")
    assert (tmp_path / "profile.png").stat().st_size > 10_000 and len(fig.axes) == 3


@pytest.mark.slow
def test_default_model_is_sparse_and_predictable():
    cfg = ReluModelConfig.preset("default")
    model, info = fit_relu_model(cfg, seed=0)
    assert info["val_loss"] < 2.5
    val = corpus_windows(8, batch_size=16, seq_len=128, seed=7, split="val")
    prof = profile_activations(model, val)
    assert sum(prof.sparsity()) / len(prof.sparsity()) > 0.6
    train = corpus_windows(8, batch_size=16, seq_len=128, seed=1)
    _, metrics = train_predictors(model, train, rank=64, steps=300, lr=3e-3, val_batches=val[:4])
    assert min(m["recall"] for m in metrics) > 0.7
