"""The captioner's vision encoder, pre-trained before the captions (LLaVA's pre-trained ViT).

LLaVA-1.5 (arXiv 2310.03744, Sec. 3.2), and so the paper's LLaVA-1.5-LLaMA-3-8B recaptioner,
starts from a pre-trained CLIP ViT-L/14 and keeps it frozen while the projector and the LLM
learn to caption. A from-scratch image-LLM trained on captions alone did not learn to see the
small objects in budget here (held-out object F1 ~0.3: the colours and shapes of the small
objects at chance), so the encoder is pre-trained first, on what the clean subset's detailed
captions state, read per cell: empty, or (size, colour, shape) - 33 classes per cell, a linear
head on the cell's visual tokens. The scenes are rendered several times with fresh placements
(augmentation), as the encoder otherwise memorises the 1000 renders.

    labels = cell_labels(scenes)                       # (N, 4) ints in [0, 33)
    pretrain_vision(model, images, labels, steps=1000, batch_size=64, lr=3e-3, seed=0)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.imagellm import ImageLLM
from paperlab.core.train import History, TrainConfig, row_batches, train
from paperlab.papers.recap import scenes as S

N_CELL_CLASSES = 1 + len(S.SIZES) * len(S.COLOURS) * len(S.SHAPES)  # empty + every object


def cell_labels(scenes: Sequence[S.Scene]) -> Tensor:
    """(N, 4) int64: per cell 0 if empty, else 1 + (size, colour, shape) as one index."""
    colours, shapes = list(S.COLOURS), list(S.SHAPES)
    y = torch.zeros(len(scenes), len(S.CELLS), dtype=torch.long)
    for i, scene in enumerate(scenes):
        for o in scene.objects:
            k = (S.SIZES.index(o.size) * len(colours) + colours.index(o.colour)) * len(shapes)
            y[i, o.cell] = 1 + k + shapes.index(o.shape)
    return y


class _CellProbe(nn.Module):
    """The encoder (stem and ViT of an ImageLLM) and a linear head on each cell's tokens."""

    def __init__(self, model: ImageLLM):
        super().__init__()
        c = model.config
        if c.image_size != S.IMAGE_SIZE or (S.IMAGE_SIZE // 2) % c.patch_size:
            raise ValueError(
                f"pretrain_vision: needs {S.IMAGE_SIZE} px images and a patch size dividing a "
                f"cell ({S.IMAGE_SIZE // 2} px), got {c.image_size} and {c.patch_size}"
            )
        self.stem, self.vision = model.stem, model.vision
        self.g = (S.IMAGE_SIZE // 2) // c.patch_size  # patches per cell side
        self.head = nn.Linear(c.vit_dim * self.g * self.g, N_CELL_CLASSES)
        self.encode = model.encode_images

    def forward(self, images: Tensor) -> Tensor:
        tok = self.encode(images)  # (B, (2g)^2, D), row-major patches
        B, _, D = tok.shape
        g = self.g
        cells = tok.reshape(B, 2, g, 2, g, D).permute(0, 1, 3, 2, 4, 5).reshape(B, 4, g * g * D)
        return self.head(cells)  # (B, 4 cells in CELLS order, classes)


def pretrain_vision(
    model: ImageLLM,
    images: Tensor,
    labels: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "cpu",
    progress: bool = True,
) -> History:
    """Train ``model``'s encoder (stem and ViT) in place on per-cell classes ``labels`` (N, 4)
    of ``images`` (N, 3, 32, 32): cross-entropy of a linear head per cell (discarded after)."""
    if len(images) != len(labels) or labels.ndim != 2 or labels.shape[1] != len(S.CELLS):
        raise ValueError(
            f"pretrain_vision: labels must be (N, 4) for N={len(images)} images, got "
            f"{tuple(labels.shape)}"
        )
    probe = _CellProbe(model)

    def loss_fn(m: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
        x, y = batch
        logits = m(x)
        y = y.to(logits.device)
        acc = float((logits.argmax(-1) == y).float().mean())
        return F.cross_entropy(logits.flatten(0, 1), y.flatten()), {"cell_acc": acc}

    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        weight_decay=0.05,
        warmup_steps=max(1, steps // 10),
        betas=(0.9, 0.98),
        seed=seed,
        progress=progress,
        log_every=max(1, steps // 20),
        desc="recap: captioner encoder",
    )
    batches = row_batches((images, labels), batch_size, seed=seed)
    history = train(probe, loss_fn, batches, cfg, device=device)
    model.eval()
    return history
