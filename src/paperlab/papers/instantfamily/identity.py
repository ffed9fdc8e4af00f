"""Face-recognition networks trained here with a margin softmax: the identity encoder that
conditions the generator (its global 1-D embedding and last L x L feature map, as the paper
takes from a pre-trained face recogniser, Sec. 3.2) and a *separate* judge (another
architecture, seed and identity set) that scores the generated faces, as the paper scores with
a face model other than its conditioning encoder.

Training: CosFace (Wang et al. 2018), logits s (cos θ_y - m) for the true class and s cos θ_j
otherwise, over ``num_ids`` training identities whose renders differ in pose and lighting;
the test identities are new (zero-shot).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.train import TrainConfig, eval_mode, train
from paperlab.papers.instantfamily.data import FACE_PX, face_crops, random_identities


@dataclass(frozen=True)
class EncoderConfig:
    width: int = 32
    embed_dim: int = 32
    local_size: int = 4  # L: the last feature map is L x L (FACE_PX / 4 with two strides)
    judge: bool = False  # the judge's architecture: max-pooling, no local map read

    def __post_init__(self) -> None:
        if self.width < 4 or self.embed_dim < 2:
            raise ValueError(f"width={self.width}, embed_dim={self.embed_dim}: too small")
        if self.local_size not in (2, 4):
            raise ValueError(f"local_size={self.local_size}: choose 2 or 4 (from {FACE_PX} px)")


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(4, cout), nn.SiLU())


class IdentityEncoder(nn.Module):
    """faces (N, 3, 16, 16) in [0, 1] -> (global (N, embed_dim) unit vectors, local map
    (N, width*2, L, L))."""

    def __init__(self, cfg: EncoderConfig = EncoderConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        if cfg.judge:  # another architecture: 5x5 stem, max-pool downsampling, a wider middle
            self.features = nn.Sequential(
                nn.Conv2d(3, w, 5, 1, 2),
                nn.SiLU(),
                nn.MaxPool2d(2),
                _block(w, 2 * w, 1),
                nn.MaxPool2d(2),
                _block(2 * w, 2 * w, 1),
            )
        else:
            layers = [
                _block(3, w, 1),
                _block(w, w, 2),
                _block(w, 2 * w, 2),
                _block(2 * w, 2 * w, 1),
            ]
            if cfg.local_size == 2:
                layers.append(_block(2 * w, 2 * w, 2))
            self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * w, cfg.embed_dim)

    @property
    def local_dim(self) -> int:
        return 2 * self.cfg.width

    def forward(self, faces: Tensor) -> tuple[Tensor, Tensor]:
        if faces.dim() != 4 or faces.shape[1:] != (3, FACE_PX, FACE_PX):
            raise ValueError(f"faces: want (N, 3, {FACE_PX}, {FACE_PX}), got {tuple(faces.shape)}")
        fmap = self.features(faces * 2 - 1)
        emb = F.normalize(self.head(fmap.mean((2, 3))), dim=-1)
        return emb, fmap


class CosFaceHead(nn.Module):
    """s (cos θ - m [true class]) logits over the training identities (CosFace)."""

    def __init__(self, dim: int, classes: int, *, s: float = 16.0, m: float = 0.2) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.1)
        self.s, self.m = s, m

    def forward(self, emb: Tensor, labels: Tensor) -> Tensor:
        cos = emb @ F.normalize(self.weight, dim=-1).T
        return self.s * (cos - self.m * F.one_hot(labels, cos.shape[1]))


class _WithHead(nn.Module):
    def __init__(self, encoder: IdentityEncoder, head: CosFaceHead) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head


def train_encoder(
    cfg: EncoderConfig,
    *,
    num_ids: int,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[IdentityEncoder, dict]:
    """CosFace training on ``num_ids`` random identities (seeded), fresh renders every step."""
    if min(num_ids, steps, batch_size) < 2:
        raise ValueError("num_ids, steps and batch_size must be >= 2")
    gen = torch.Generator().manual_seed(seed)
    ids = random_identities(num_ids, gen)
    torch.manual_seed(seed)
    model = _WithHead(IdentityEncoder(cfg), CosFaceHead(cfg.embed_dim, num_ids))

    def batches(step: int) -> tuple[Tensor, Tensor]:
        labels = torch.randint(num_ids, (batch_size,), generator=gen)
        return face_crops(ids[labels], gen).to(device), labels.to(device)

    def loss_fn(m: _WithHead, batch: tuple[Tensor, Tensor]) -> Tensor:
        faces, labels = batch
        return F.cross_entropy(m.head(m.encoder(faces)[0], labels), labels)

    tc = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=steps // 20,
        weight_decay=1e-4,
        seed=seed,
        progress=progress,
        desc="id encoder" if not cfg.judge else "judge",
    )
    history = train(model, loss_fn, batches, tc, device=device)
    tail = history["loss"][-max(1, len(history["loss"]) // 10) :]
    return model.encoder.eval(), {"final_loss": float(sum(tail) / len(tail))}


@torch.no_grad()
def embed(encoder: IdentityEncoder, faces: Tensor, batch_size: int = 256) -> Tensor:
    """Global unit embeddings (N, embed_dim) of faces (N, 3, 16, 16) in [0, 1]."""
    device = next(encoder.parameters()).device
    with eval_mode(encoder):
        out = [encoder(f.to(device))[0] for f in faces.split(batch_size)]
    return torch.cat(out).cpu()


@torch.no_grad()
def identification_accuracy(encoder: IdentityEncoder, *, identities: int, seed: int) -> float:
    """Top-1 identification of new identities: a gallery of one render each, a probe of
    another render each (other pose, light, size, background); chance = 1 / identities."""
    gen = torch.Generator().manual_seed(seed)
    ids = random_identities(identities, gen)
    gallery, probe = embed(encoder, face_crops(ids, gen)), embed(encoder, face_crops(ids, gen))
    pred = (probe @ gallery.T).argmax(1)
    return float((pred == torch.arange(identities)).float().mean())
