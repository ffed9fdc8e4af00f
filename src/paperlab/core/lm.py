"""The byte-level language-model recipe on the corpus, one copy for every paper that needs a
trained decoder (MTP, Kangaroo, PowerInfer-2, the decoding benchmarks).

    model = Llama(LlamaConfig(vocab_size=256, dim=128, n_layers=4, n_heads=4))
    recipe = ByteLM(steps=600, lr=3e-3, batch_size=16, seq_len=128)
    history = train_byte_lm(model, recipe, seed=0)       # history["loss"], history["seconds"]
    val = byte_lm_loss(model, seq_len=128, batch_size=16, batches=8)   # nats/byte, val files

Batches are random contiguous windows of the corpus split (:func:`corpus_batches`: the stdlib
``.py`` sources of this interpreter, split by file), ``y`` is ``x`` shifted by one, and the
loss is next-token cross-entropy (:func:`next_token_loss`) unless the paper brings its own
(multi-token prediction's per-head losses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.data.text import load_corpus, random_batches
from paperlab.core.train import History, LossFn, TrainConfig, eval_mode, train

VAL_SEED = 1234  # the fixed validation windows every paper's val loss reads


def corpus_batches(
    split: str, batch_size: int, seq_len: int, seed: int, *, device: str = "cpu"
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless ``(x, y)`` windows of the corpus ``split`` ("train" or "val"), seeded."""
    return random_batches(load_corpus(split=split), batch_size, seq_len, seed, device=device)


def next_token_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy of ``model(x)`` (B, T, V) against ``y`` (B, T)."""
    x, y = batch
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten())


@dataclass(frozen=True)
class ByteLM:
    """How a byte LM is trained here: AdamW, linear warmup (10% of the steps unless given)
    then cosine decay, clipping at 1 (see :class:`paperlab.core.train.TrainConfig`)."""

    steps: int
    lr: float
    batch_size: int = 16
    seq_len: int = 128
    warmup_steps: int | None = None  # None: max(1, steps // 10)
    weight_decay: float = 0.1

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"ByteLM: {name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"ByteLM: lr must be > 0, got {self.lr}")

    def train_config(self, *, seed: int, progress: bool, desc: str, **extra) -> TrainConfig:
        warmup = max(1, self.steps // 10) if self.warmup_steps is None else self.warmup_steps
        return TrainConfig(
            steps=self.steps,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_steps=min(warmup, self.steps),
            progress=progress,
            seed=seed,
            desc=desc,
            **extra,
        )


def train_byte_lm(
    model: nn.Module,
    recipe: ByteLM,
    *,
    seed: int,
    loss_fn: LossFn = next_token_loss,
    manual_backward: bool = False,
    split: str = "train",
    device: str = "cpu",
    progress: bool = False,
    desc: str = "byte LM",
) -> History:
    """Train ``model`` in place on corpus windows; return the history (``seconds`` included).
    The model is left in eval mode. ``seed`` fixes the batches and the training RNG."""
    if not isinstance(recipe, ByteLM):
        raise TypeError(f"train_byte_lm: recipe must be a ByteLM, got {type(recipe).__name__}")
    batches = corpus_batches(split, recipe.batch_size, recipe.seq_len, seed)
    tcfg = recipe.train_config(
        seed=seed, progress=progress, desc=desc, manual_backward=manual_backward
    )
    history = train(model, loss_fn, batches, tcfg, device=device)
    model.eval()
    return history


@torch.no_grad()
def byte_lm_loss(
    model: nn.Module,
    *,
    seq_len: int,
    batch_size: int = 16,
    batches: int = 8,
    split: str = "val",
    seed: int = VAL_SEED,
    loss_fn: LossFn = next_token_loss,
) -> float:
    """Mean of ``loss_fn`` over ``batches`` fixed windows of ``split`` (nats/byte for the
    default loss), in eval mode, on the model's device."""
    if batches < 1:
        raise ValueError(f"byte_lm_loss: batches must be >= 1, got {batches}")
    device = next(model.parameters()).device
    stream = corpus_batches(split, batch_size, seq_len, seed, device=str(device))
    with eval_mode(model):
        return sum(float(loss_fn(model, next(stream))) for _ in range(batches)) / batches


def recipe_fields(cfg: object, *names: str) -> ByteLM:
    """A :class:`ByteLM` from the same-named fields of a paper's config (``steps``, ``lr``, ...),
    so a claims config keeps its flat ``--set`` keys."""
    values = {n: getattr(cfg, n) for n in names}
    return dataclasses.replace(ByteLM(steps=1, lr=1.0), **values)
