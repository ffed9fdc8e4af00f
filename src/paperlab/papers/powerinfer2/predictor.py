"""Activation predictors: one small low-rank MLP per layer that guesses, from the layer's FFN
input, which neurons the ReLU gate will let through, before any FFN weight is read.

PowerInfer (arXiv 2312.12456, Sec. 5.1 "adaptive sparsity predictors") follows Deja Vu: per
layer an MLP with one hidden layer, input = the FFN input x of that layer, one output per
neuron, trained with binary cross-entropy on activations recorded offline on general text; its
released predictors (`mlp_pre_w1`, `mlp_pre_w2` in its llama.cpp fork) are
`w2 @ relu(w1 @ x)`. PowerInfer sizes the hidden width per layer (smaller where a layer is
sparser or more skewed) while keeping its accuracy high and the predictors small next to the
model. PowerInfer-2 (arXiv 2406.06282, Sec. 4.1.2) runs them in decoding: the predicted
neurons are the ones whose bundles are fetched and computed. The errors are not symmetric: a
missed active neuron changes the output, a false positive only costs I/O and compute, so an
engine favours recall over precision. We expose that trade with `pos_weight` (BCE weight on
the active targets) and the decision `threshold`.

PowerInfer never released its predictor-training code; this is a public one:

    predictors, metrics = train_predictors(model, train_ids, rank=64, steps=200,
                                           val_batches=val_ids, pos_weight=2.0, threshold=0.3)
    metrics[l]  # {"recall", "precision", "predicted_share", "true_share", "accuracy"}
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.checkpoint import load_model, save_model
from paperlab.core.device import torch_threads
from paperlab.core.llama import Llama
from paperlab.core.train import TrainConfig, eval_mode, row_batches, train
from paperlab.papers.powerinfer2.profile import activation_masks, ffn_inputs

PREDICTORS_KIND = "PowerInfer2Predictors"


class ActivationPredictor(nn.Module):
    """logits = fc2(relu(fc1(x))): dim -> rank -> ffn_hidden (Sec. 5.1 of PowerInfer)."""

    def __init__(self, *, dim: int, ffn_hidden: int, rank: int):
        super().__init__()
        if min(dim, ffn_hidden, rank) < 1:
            raise ValueError(
                f"ActivationPredictor: dim={dim}, ffn_hidden={ffn_hidden}, rank={rank} must be >= 1"
            )
        self.dim, self.ffn_hidden, self.rank = dim, ffn_hidden, rank
        self.fc1 = nn.Linear(dim, rank, bias=False)
        # DEVIATION: a bias on the output layer (PowerInfer's w1, w2 are bias-free matrices):
        # a free per-neuron prior, so hot neurons are predicted active when the code is unsure.
        self.fc2 = nn.Linear(rank, ffn_hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))  # (..., ffn_hidden) logits

    @torch.no_grad()
    def predict(self, x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
        """bool (..., ffn_hidden): sigmoid(logit) > threshold, i.e. logit > logit(threshold)."""
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"predict: threshold={threshold} must be in (0, 1)")
        return self(x) > math.log(threshold / (1.0 - threshold))


@torch.no_grad()
def predictor_metrics(
    predictor: ActivationPredictor,
    x: torch.Tensor,
    active: torch.Tensor,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Recall (share of truly active neurons predicted), precision (share of predicted that are
    active), predicted/true share of neurons, and accuracy, over all (token, neuron) pairs."""
    predicted = predictor.predict(x, threshold)
    active = active.bool()
    tp = int((predicted & active).sum())
    n_pred, n_true, n = int(predicted.sum()), int(active.sum()), active.numel()
    return {
        "recall": tp / n_true if n_true else 1.0,
        "precision": tp / n_pred if n_pred else 1.0,
        "predicted_share": n_pred / n,
        "true_share": n_true / n,
        "accuracy": 1.0 - (n_pred + n_true - 2 * tp) / n,
    }


def record_activations(
    model: Llama, batches: Iterable[torch.Tensor]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (x (N, dim), active (N, ffn) bool) over all tokens of `batches` (ids (B, T))."""
    xs: list[list[torch.Tensor]] = [[] for _ in model.layers]
    ys: list[list[torch.Tensor]] = [[] for _ in model.layers]
    with eval_mode(model):
        for ids in batches:
            ids = ids[0] if isinstance(ids, tuple | list) else ids
            inputs = ffn_inputs(model, ids)
            for l, (x, y) in enumerate(zip(inputs, activation_masks(model, inputs), strict=True)):
                xs[l].append(x)
                ys[l].append(y)
    if not xs[0]:
        raise ValueError("record_activations: batches yielded nothing")
    return [(torch.cat(x), torch.cat(y)) for x, y in zip(xs, ys, strict=True)]


def _bce_loss(pos_weight: float):
    def loss_fn(predictor: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        weight = torch.tensor(pos_weight, dtype=x.dtype)
        return F.binary_cross_entropy_with_logits(predictor(x), y.to(x.dtype), pos_weight=weight)

    return loss_fn


def train_predictors(
    model: Llama,
    batches: Iterable[torch.Tensor],
    *,
    rank: int | Sequence[int],
    steps: int,
    lr: float = 3e-3,  # 1e-3 left recall at ~0.82 in 300 steps (default preset, val text)
    seed: int = 0,
    progress: bool = False,
    val_batches: Iterable[torch.Tensor] | None = None,
    pos_weight: float = 1.0,
    threshold: float = 0.5,
    batch_tokens: int = 512,
    holdout: float = 0.1,
) -> tuple[list[ActivationPredictor], list[dict[str, float]]]:
    """Train one predictor per layer with BCE on (FFN input, active) pairs recorded on `batches`.

    Metrics (see `predictor_metrics`, at `threshold`) are measured on held-out tokens: those of
    `val_batches` (e.g. the validation split) if given, else the last `holdout` share of the
    recorded tokens, which are then not trained on. `rank` may differ per layer (PowerInfer
    sizes each layer's predictor; we default to one rank for all). `pos_weight` > 1 favours
    recall (a missed neuron costs accuracy, an extra one only I/O)."""
    if steps < 1 or batch_tokens < 1 or not pos_weight > 0 or not 0.0 < holdout < 1.0:
        raise ValueError(
            "train_predictors: steps, batch_tokens >= 1, pos_weight > 0 and "
            f"0 < holdout < 1 please (got {steps}, {batch_tokens}, {pos_weight}, "
            f"{holdout})"
        )
    ranks = [rank] * len(model.layers) if isinstance(rank, int) else list(rank)
    if len(ranks) != len(model.layers):
        raise ValueError(f"train_predictors: {len(ranks)} ranks for {len(model.layers)} layers")
    recorded = record_activations(model, batches)
    if val_batches is not None:
        train_sets, val_sets = recorded, record_activations(model, val_batches)
    else:
        cut = int(len(recorded[0][0]) * (1.0 - holdout))
        train_sets = [(x[:cut], y[:cut]) for x, y in recorded]
        val_sets = [(x[cut:], y[cut:]) for x, y in recorded]
    predictors, metrics = [], []
    for l, ((x, y), (vx, vy)) in enumerate(zip(train_sets, val_sets, strict=True)):
        torch.manual_seed(seed * 1_000 + l)
        predictor = ActivationPredictor(dim=x.shape[1], ffn_hidden=y.shape[1], rank=ranks[l])
        rows = row_batches((x, y), batch_tokens, seed=seed * 1_000 + l)
        tcfg = TrainConfig(
            steps=steps,
            lr=lr,
            weight_decay=0.0,
            progress=progress,
            seed=seed * 1_000 + l,
            desc=f"predictor {l}",
        )
        with torch_threads(1):  # tiny matmuls: one thread is as fast, and far faster when
            train(predictor, _bce_loss(pos_weight), rows, tcfg)  # the cores are contended
        predictor.eval()
        predictors.append(predictor)
        metrics.append(predictor_metrics(predictor, vx, vy, threshold))
    return predictors, metrics


def save_predictors(predictors: Sequence[ActivationPredictor], path: str | os.PathLike) -> Path:
    """All layers' predictors in one paperlab checkpoint (their shapes as its config)."""
    if not predictors:
        raise ValueError("save_predictors: no predictors")
    shapes = [[p.dim, p.ffn_hidden, p.rank] for p in predictors]
    return save_model(
        path, nn.ModuleList(predictors), kind=PREDICTORS_KIND, config={"shapes": shapes}
    )


def _build(config: dict) -> nn.ModuleList:
    return nn.ModuleList(
        ActivationPredictor(dim=dim, ffn_hidden=ffn_hidden, rank=rank)
        for dim, ffn_hidden, rank in config["shapes"]
    )


def load_predictors(path: str | os.PathLike) -> list[ActivationPredictor]:
    """Predictors written by `save_predictors` (eval mode); missing/damaged -> ValueError."""
    try:
        nets, _ = load_model(path, _build, kind=PREDICTORS_KIND)
    except FileNotFoundError:
        raise ValueError(f"no predictor file at {path}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: not a valid predictor file ({str(e).splitlines()[0]})") from None
    return [p.eval() for p in nets]
