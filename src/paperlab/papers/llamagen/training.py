"""Training the two stages with `paperlab.core.train.train`: the tokenizer on images, then the
generator on the tokenizer's codes of the same images (the codes are extracted once,
before AR training, as the official `extract_codes_c2i.py`).

    tok, _ = train_tokenizer(images, config=VQTokenizerConfig(codebook_size=256), steps=300)
    gen, _ = train_generator(tok, images, labels, config=LlamaGenConfig(...), steps=500)
"""

from __future__ import annotations

import torch
from torch import Tensor

from paperlab.core.train import TrainConfig, eval_mode, row_batches, train
from paperlab.papers.llamagen.generator import LlamaGen, LlamaGenConfig, generator_loss
from paperlab.papers.llamagen.tokenizer import VQTokenizer, VQTokenizerConfig, tokenizer_loss


def train_tokenizer(
    images: Tensor,
    *,
    config: VQTokenizerConfig,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    desc: str = "tokenizer",
) -> tuple[VQTokenizer, dict]:
    """Train a VQTokenizer on images (N, C, H, W) in [0, 1]; returns (tokenizer in eval mode,
    history with the wall time in history["seconds"]). Paper: Adam lr 1e-4, batch 128,
    beta (0.9, 0.95); DEVIATION: a higher lr for the short miniature runs."""
    torch.manual_seed(seed)
    model = VQTokenizer(config=config)
    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=max(1, steps // 20),
        progress=progress,
        seed=seed,
        desc=desc,
    )
    history = train(
        model,
        lambda m, b: tokenizer_loss(m, b[0]),
        row_batches((images,), batch_size, seed=seed),
        cfg,
        device=device,
    )
    return model.eval(), history


@torch.no_grad()
def encode_images(tokenizer: VQTokenizer, images: Tensor, *, batch_size: int = 256) -> Tensor:
    """Token indices (N, h, w) of all images, in eval mode, batch by batch."""
    device = next(tokenizer.parameters()).device
    with eval_mode(tokenizer):
        parts = [
            tokenizer.encode(images[i : i + batch_size].to(device)).cpu()
            for i in range(0, images.shape[0], batch_size)
        ]
    return torch.cat(parts)


def train_generator(
    tokenizer: VQTokenizer | None,
    images_or_indices: Tensor,
    labels: Tensor,
    *,
    config: LlamaGenConfig,
    steps: int = 500,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    desc: str = "generator",
) -> tuple[LlamaGen, dict]:
    """Train a LlamaGen on (images encoded by `tokenizer`) or on precomputed indices (pass
    tokenizer=None). Paper: AdamW beta (0.9, 0.95), weight decay 0.05, lr 1e-4; DEVIATION: a
    higher lr (default 3e-3, with warmup + cosine) for the short miniature runs."""
    if tokenizer is not None:
        indices = encode_images(tokenizer, images_or_indices)
    else:
        indices = images_or_indices.long()
    if indices.shape[1:] != (config.grid_size, config.grid_size):
        raise ValueError(
            f"train_generator: codes of shape {tuple(indices.shape[1:])} do not match "
            f"grid_size={config.grid_size}"
        )
    torch.manual_seed(seed)
    model = LlamaGen(config=config)
    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        weight_decay=weight_decay,
        betas=(0.9, 0.95),
        warmup_steps=max(1, steps // 20),
        progress=progress,
        seed=seed,
        desc=desc,
    )
    batches = row_batches((indices, labels.long()), batch_size, seed=seed)
    history = train(model, generator_loss, batches, cfg, device=device)
    return model.eval(), history
