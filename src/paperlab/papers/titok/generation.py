"""Training a token generator (MaskGIT or AR) on a tokenizer's codes, and sampling images.

tokens = tokenize(tokenizer, train_images)                      # (N, T) int64
gen = MaskGIT(codebook_size=256, seq_len=tokenizer.num_tokens, num_classes=12)
train_generator(gen, tokens, labels, steps=500)
images = sample_images(gen, tokenizer, labels[:16], cfg_scale=2.0)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from paperlab.core.train import TrainConfig, row_batches, train
from paperlab.papers.titok.ar import ARGenerator
from paperlab.papers.titok.maskgit import MaskGIT, maskgit_loss


@torch.no_grad()
def tokenize(tokenizer: nn.Module, images: Tensor, *, batch_size: int = 512) -> Tensor:
    """Token indices (N, T) of ``images`` under a trained tokenizer (eval mode), computed on
    the tokenizer's device and returned on the device of ``images``."""
    tokenizer.eval()
    device = next(tokenizer.parameters()).device
    return torch.cat(
        [tokenizer.encode(b.to(device)).to(b.device) for b in images.split(batch_size)]
    )


def train_generator(
    model: MaskGIT | ARGenerator,
    tokens: Tensor,
    labels: Tensor,
    *,
    steps: int = 500,
    batch_size: int = 32,
    lr: float = 1e-3,
    class_dropout: float = 0.1,
    seed: int = 0,
    progress: bool = False,
    desc: str = "generator",
    device: str = "cpu",
) -> dict[str, list[float]]:
    """Train a MaskGIT (masked-token loss, Sec. 3.3 of TiTok) or an AR generator (next-token
    loss) on (tokens, labels) with the core training loop on ``device``; returns the history.
    Masks and class dropout are drawn on the CPU (a CPU generator), then moved."""
    if tokens.shape[1] != model.seq_len:
        raise ValueError(f"tokens have length {tokens.shape[1]}; the model expects {model.seq_len}")
    gen = torch.Generator().manual_seed(seed + 17)

    def loss_fn(m: nn.Module, b: tuple[Tensor, Tensor]) -> Tensor:
        x, y = b
        if isinstance(m, MaskGIT):
            return maskgit_loss(m, x, y, class_dropout=class_dropout, generator=gen)
        return m.loss(x, y, class_dropout=class_dropout, generator=gen)

    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=max(1, steps // 20),
        # TiTok's generator config: AdamW(0.9, 0.96), wd 0.03, grad clip 1. DEVIATION: lr 1e-3
        # for a few hundred steps (TiTok: 2e-4 for 500k steps, batch 2048) and no EMA weights.
        weight_decay=0.03,
        betas=(0.9, 0.96),
        progress=progress,
        seed=seed,
        desc=desc,
    )
    batches = row_batches((tokens, labels), batch_size, seed=seed)
    history = train(model, loss_fn, batches, cfg, device=device)
    model.eval()
    return history


@torch.no_grad()
def sample_images(
    generator: MaskGIT | ARGenerator,
    tokenizer: nn.Module,
    labels: Tensor,
    *,
    seed: int = 0,
    **sampling: Any,
) -> Tensor:
    """Class-conditional samples: tokens from ``generator`` (its ``generate`` keywords, e.g.
    num_steps / cfg_scale / temperature), decoded by ``tokenizer`` -> (B, C, H, W) in [0, 1],
    on the device of ``labels`` (the models run on their own device; the random draws are
    made on the CPU with a generator seeded by ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    ids = generator.generate(labels, generator=g, **sampling)
    return tokenizer.decode_indices(ids.to(next(tokenizer.parameters()).device)).to(labels.device)
