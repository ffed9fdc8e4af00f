"""The ReLU-sparse decoder PowerInfer-2 serves, trained here on the text corpus.

PowerInfer-2 (arXiv 2406.06282, Sec. 2 and 6) runs ReLU-family models (TurboSparse-Mistral /
-Mixtral, ReLU-Llama, Bamboo): with a ReLU gate most FFN neurons output exactly zero on a token,
so their weights need neither be read nor multiplied. Ours is the core `Llama` with a ReGLU FFN,
`down(relu(gate(x)) * up(x))` (`LlamaConfig(hidden_act="relu")`): neuron i is active on a token
iff `gate_proj(x)[i] > 0`.

The model is a byte-level decoder trained from scratch on the Python standard library sources
(`paperlab.core.data.text`, split by file) with the shared loop `paperlab.core.train.train`.
Sizing: the FFN holds most of the weights (dim 256, ffn 1536: 4.7M of 5.9M parameters at the
default preset), so reading it from disk is what an engine under a memory budget pays for.

    cfg = ReluModelConfig.preset("default")
    model, info = fit_relu_model(cfg, seed=0)   # info: seconds, val_loss, history
    model = train_relu_model(cfg, seed=0)        # the model only
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.data.text import load_corpus
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.train import TrainConfig, row_batches, train


@dataclass
class ReluModelConfig:
    """The ReLU decoder and its training run. Defaults = the `default` preset."""

    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ffn_hidden: int = 1536  # neurons per layer; the FFN is ~80% of the weights
    seq_len: int = 128  # training window (bytes)
    max_seq_len: int = 1024  # positions the model supports at inference (prompt + generation)
    steps: int = 240
    batch_size: int = 8  # 240 x 8 x 128 = 246k training bytes: ~1 minute on 2 idle cores
    lr: float = 2e-3
    warmup_steps: int = 20
    weight_decay: float = 0.1
    val_batches: int = 8  # validation windows (of batch_size) for val_loss

    # DEVIATION: a 6M-parameter byte-level model trained from scratch for ~1 minute (246k bytes
    # of random windows of Python sources) instead of the paper's 7B-47B ReLU-fied LLMs
    # (TurboSparse-Mistral/-Mixtral: dReLU and ~150B tokens of continued pre-training).

    def __post_init__(self) -> None:
        positive = (
            "dim",
            "n_layers",
            "n_heads",
            "ffn_hidden",
            "seq_len",
            "max_seq_len",
            "steps",
            "batch_size",
            "val_batches",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"ReluModelConfig.{name}={getattr(self, name)} must be >= 1")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(
                f"ReluModelConfig: dim={self.dim} must split into n_heads={self.n_heads} heads "
                "of even size"
            )
        if self.seq_len > self.max_seq_len:
            raise ValueError(f"ReluModelConfig.seq_len={self.seq_len} exceeds max_seq_len")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"ReluModelConfig.lr={self.lr} must be a positive number")
        if self.warmup_steps < 0 or self.weight_decay < 0:
            raise ValueError("ReluModelConfig.warmup_steps and weight_decay must be >= 0")

    @classmethod
    def preset(cls, scale: str, **overrides) -> ReluModelConfig:
        if scale not in PRESETS:
            raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[scale], **overrides})

    def llama_config(self) -> LlamaConfig:
        """The core decoder: ReGLU FFN, byte vocabulary (256), plain multi-head attention."""
        return LlamaConfig(
            vocab_size=256,
            dim=self.dim,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            ffn_hidden=self.ffn_hidden,
            max_seq_len=self.max_seq_len,
            hidden_act="relu",
        )


PRESETS: dict[str, dict] = {
    "tiny": dict(
        dim=32,
        n_layers=2,
        n_heads=2,
        ffn_hidden=128,
        seq_len=32,
        max_seq_len=256,
        steps=20,
        batch_size=4,
        warmup_steps=2,
        val_batches=2,
    ),
    "default": {},
    "full": dict(
        dim=384,
        n_layers=6,
        n_heads=6,
        ffn_hidden=3072,
        seq_len=256,
        steps=3000,
        batch_size=16,
        lr=1e-3,
        warmup_steps=100,
        val_batches=32,
    ),
}


def text_batches(
    seq_len: int, *, split: str, seed: int, batch_size: int = 16
) -> Callable[[int], torch.Tensor]:
    """`step -> ids (batch_size, seq_len)` int64: random contiguous byte windows of the corpus
    split ("train" or "val", split by file), a pure function of (seed, step)."""
    if seq_len < 1 or batch_size < 1:
        raise ValueError(f"text_batches: seq_len={seq_len}, batch_size={batch_size} must be >= 1")
    data = load_corpus(split=split)
    if len(data) < seq_len:
        raise ValueError(f"text_batches: the {split} split ({len(data)} B) is < seq_len={seq_len}")
    rows = row_batches(data.unfold(0, seq_len, 1), batch_size, seed=seed)  # (N, seq_len) view
    return lambda step: rows(step).long()


def lm_loss(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Next-byte cross-entropy (nats/byte) on windows ids (B, T + 1)."""
    logits = model(ids[:, :-1])  # (B, T, 256)
    return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())


@torch.no_grad()
def val_loss(model: Llama, cfg: ReluModelConfig, *, seed: int = 1234) -> float:
    """Mean next-byte cross-entropy on `cfg.val_batches` fixed windows of the validation files."""
    was_training = model.training
    model.eval()
    batch = text_batches(cfg.seq_len + 1, split="val", seed=seed, batch_size=cfg.batch_size)
    loss = sum(float(lm_loss(model, batch(i))) for i in range(cfg.val_batches))
    model.train(was_training)
    return loss / cfg.val_batches


_TRAINED: dict[tuple, tuple[Llama, dict]] = {}  # one training run per (config, seed) per process


def fit_relu_model(
    cfg: ReluModelConfig, *, seed: int = 0, progress: bool = False
) -> tuple[Llama, dict]:
    """(trained model in eval mode, info) with info = {seconds, val_loss, train_loss, history}.

    Trained once per process for a given (config, seed); callers get their own copy."""
    key = (tuple(dataclasses.astuple(cfg)), seed)
    if key not in _TRAINED:
        torch.manual_seed(seed)
        model = Llama(cfg.llama_config())
        batches = text_batches(cfg.seq_len + 1, split="train", seed=seed, batch_size=cfg.batch_size)
        tcfg = TrainConfig(
            steps=cfg.steps,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            warmup_steps=min(cfg.warmup_steps, cfg.steps),
            progress=progress,
            seed=seed,
            desc="relu decoder",
        )
        start = time.perf_counter()
        history = train(model, lm_loss, batches, tcfg)
        seconds = time.perf_counter() - start
        model.eval()
        info = {
            "seconds": seconds,
            "val_loss": val_loss(model, cfg),
            "train_loss": history["loss"][-1],
            "history": history,
        }
        _TRAINED[key] = (model, info)
    model, info = _TRAINED[key]
    return copy.deepcopy(model), copy.deepcopy(info)


def train_relu_model(cfg: ReluModelConfig, *, seed: int = 0, progress: bool = False) -> Llama:
    """The trained ReLU decoder (eval mode); see `fit_relu_model` for its figures."""
    return fit_relu_model(cfg, seed=seed, progress=progress)[0]
