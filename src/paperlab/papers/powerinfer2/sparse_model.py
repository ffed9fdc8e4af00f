"""The ReLU-sparse decoder PowerInfer-2 serves, trained here on the text corpus.

PowerInfer-2 (arXiv 2406.06282, Sec. 2 and 6) runs ReLU-family models (TurboSparse-Mistral /
-Mixtral, ReLU-Llama, Bamboo): with a ReLU gate most FFN neurons output exactly zero on a token,
so their weights need neither be read nor multiplied. Ours is the core `Llama` with a ReGLU FFN,
`down(relu(gate(x)) * up(x))` (`LlamaConfig(hidden_act="relu")`): neuron i is active on a token
iff `gate_proj(x)[i] > 0`.

The model is a byte-level decoder trained from scratch on the Python standard library sources
(`paperlab.core.data.text`, split by file) with the core byte-LM recipe (`paperlab.core.lm`:
random contiguous (x, y) windows, next-byte cross-entropy, AdamW with warmup and cosine decay).
Sizing: the FFN holds most of the weights (dim 256, ffn 1536: 4.7M of 5.9M parameters at the
default preset), so reading it from disk is what an engine under a memory budget pays for.

    cfg = ReluModelConfig.preset("default")
    model, info = fit_relu_model(cfg, seed=0)   # info: seconds, val_loss, history
    model = train_relu_model(cfg, seed=0)        # the model only
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.lm import VAL_SEED, ByteLM, byte_lm_loss, train_byte_lm


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


@torch.no_grad()
def val_loss(model: Llama, cfg: ReluModelConfig, *, seed: int = VAL_SEED) -> float:
    """Mean next-byte cross-entropy on `cfg.val_batches` fixed windows of the validation files."""
    return byte_lm_loss(
        model, seq_len=cfg.seq_len, batch_size=cfg.batch_size, batches=cfg.val_batches, seed=seed
    )


def recipe(cfg: ReluModelConfig) -> ByteLM:
    """The core byte-LM recipe for ``cfg`` (AdamW, warmup then cosine, corpus windows)."""
    return ByteLM(
        steps=cfg.steps,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        seq_len=cfg.seq_len,
        warmup_steps=min(cfg.warmup_steps, cfg.steps),
        weight_decay=cfg.weight_decay,
    )


def fit_relu_model(
    cfg: ReluModelConfig, *, seed: int = 0, progress: bool = False
) -> tuple[Llama, dict]:
    """(trained model in eval mode, info) with info = {seconds, val_loss, train_loss, history}
    (JSON-able). Trains on every call: callers that share a model go through an artifact cache
    (the claims: `experiments.shared_model`)."""
    torch.manual_seed(seed)
    model = Llama(cfg.llama_config())
    history = train_byte_lm(model, recipe(cfg), seed=seed, progress=progress, desc="relu decoder")
    info = {
        "seconds": sum(history["seconds"]),
        "val_loss": val_loss(model, cfg),
        "train_loss": history["loss"][-1],
        "history": history,
    }
    return model, info


def train_relu_model(cfg: ReluModelConfig, *, seed: int = 0, progress: bool = False) -> Llama:
    """The trained ReLU decoder (eval mode); see `fit_relu_model` for its figures."""
    return fit_relu_model(cfg, seed=seed, progress=progress)[0]
