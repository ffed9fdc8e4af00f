"""Training the generator on group canvases of 1-2 people, and generating new groups from
identity images, boxes and a background colour (the prompt)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from paperlab.core.diffusion import ddim_sample, diffusion_loss, make_scheduler
from paperlab.core.train import TrainConfig, train
from paperlab.papers.instantfamily.attention import RegionMask
from paperlab.papers.instantfamily.data import (
    COLOURS,
    FACE_PX,
    check_boxes,
    id_images,
    make_scene,
    pose_image,
)
from paperlab.papers.instantfamily.identity import IdentityEncoder
from paperlab.papers.instantfamily.model import Condition, GeneratorConfig, Guided, InstantFamily


@dataclass
class Pool:
    """Training canvases with ``k`` people: images (N, 3, S, S) in [-1, 1], colour (N,),
    boxes (N, k, 3), control (N, 3, S, S), and the frozen encoder's features of each person's
    identity image (another render than the one in the canvas): id_global, id_local."""

    images: Tensor
    colour: Tensor
    boxes: Tensor
    control: Tensor
    id_global: Tensor
    id_local: Tensor


@torch.no_grad()
def id_features(encoder: IdentityEncoder, refs: Tensor) -> tuple[Tensor, Tensor]:
    """Identity images (B, K, 3, 16, 16) -> (global (B, K, E), local (B, K, C, L, L))."""
    b, k = refs.shape[:2]
    device = next(encoder.parameters()).device
    emb, fmap = encoder(refs.reshape(b * k, *refs.shape[2:]).to(device))
    return emb.view(b, k, -1).cpu(), fmap.view(b, k, *fmap.shape[1:]).cpu()


def make_pool(encoder: IdentityEncoder, n: int, k: int, *, size: int, seed: int) -> Pool:
    """``n`` canvases of ``k`` new random people (seeded), with their identity features."""
    gen = torch.Generator().manual_seed(seed)
    scene = make_scene(n, k, gen, size=size)
    refs = id_images(scene.ids.reshape(n * k, -1), gen).view(n, k, 3, FACE_PX, FACE_PX)
    g, loc = id_features(encoder, refs)
    return Pool(scene.images, scene.colour, scene.boxes, scene.control, g, loc)


# DEVIATION: the loss weighs the face regions (box + 25% margin) 1 + FACE_WEIGHT times the
# background; the paper trains with the plain diffusion loss. At 300 steps on a CPU the plain
# loss spends itself on the background and the layout: the generator drew no identity
# (1-person similarity +0.03 above a random identity); weighted, it draws the given person.
FACE_WEIGHT = 3.0


def face_weights(boxes: Tensor, size: int, face_weight: float) -> Tensor:
    """(B, 1, size, size) per-pixel loss weights: 1 + ``face_weight`` inside every person's
    mask region (the box grown by the 25% margin), 1 on the background."""
    owner = torch.arange(boxes.shape[1], device=boxes.device)
    inside = RegionMask(boxes, owner, size).inside(size, size).any(1)  # (B, S*S)
    return 1 + face_weight * inside.view(-1, 1, size, size).to(torch.float32)


def face_weighted_loss(
    model: nn.Module,
    x0: Tensor,
    cond: Condition,
    scheduler,
    *,
    face_weight: float,
    generator: torch.Generator,
) -> Tensor:
    """The diffusion core's DDPM loss with each pixel's squared error weighted by
    :func:`face_weights` (normalised by the mean weight); ``face_weight=0`` is the plain loss."""
    w = face_weights(cond.boxes, x0.shape[-1], face_weight) if face_weight else None
    return diffusion_loss(model, x0, scheduler, cond=cond, generator=generator, weight=w)


def train_generator(
    cfg: GeneratorConfig,
    pools: list[Pool],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    cond_drop: float = 0.1,
    face_weight: float = FACE_WEIGHT,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[InstantFamily, dict]:
    """DDPM training (the diffusion core's training loop and schedule: AdamW, warm-up, cosine,
    clipping) on canvases drawn from ``pools`` (one pool per people count; each step picks
    one); the people's order in the embedding stack is shuffled every step, and a
    ``cond_drop`` share of rows gets the null condition (for CFG). ``face_weight``: the face
    regions' extra weight in the loss (0: the plain DDPM loss)."""
    if not pools:
        raise ValueError("pools: need at least one pool of training canvases")
    if min(steps, batch_size) < 1 or lr <= 0:
        raise ValueError(f"steps={steps}, batch_size={batch_size}, lr={lr}: all must be > 0")
    if face_weight < 0:
        raise ValueError(f"face_weight={face_weight}: must be >= 0")
    gen = torch.Generator().manual_seed(seed + 1)
    noise_gen = torch.Generator().manual_seed(seed + 12_345)
    torch.manual_seed(seed)
    model = InstantFamily(cfg)
    scheduler = make_scheduler("ddpm", prediction_type=cfg.prediction)

    def batch(step: int) -> tuple[Tensor, Condition]:
        pool = pools[int(torch.randint(len(pools), (1,), generator=gen))]
        idx = torch.randint(pool.images.shape[0], (batch_size,), generator=gen)
        k = pool.boxes.shape[1]
        cond = Condition(
            colour=pool.colour[idx],
            id_global=pool.id_global[idx],
            id_local=pool.id_local[idx],
            boxes=pool.boxes[idx],
            control=pool.control[idx],
            null=torch.rand(batch_size, generator=gen) < cond_drop,
            order=torch.randperm(k, generator=gen).tolist(),  # Sec. 3.2: no first-slot bias
        )
        return pool.images[idx].to(device), cond.to(device)

    def loss_fn(model: nn.Module, batch: tuple[Tensor, Condition]) -> Tensor:
        x0, cond = batch
        return face_weighted_loss(
            model, x0, cond, scheduler, face_weight=face_weight, generator=noise_gen
        )

    tc = TrainConfig(  # the diffusion core's train_diffusion settings
        steps=steps,
        lr=lr,
        warmup_steps=max(1, steps // 20),
        weight_decay=0.0,
        betas=(0.9, 0.999),
        seed=seed,
        progress=progress,
        desc="generator",
        grad_clip=1.0,
    )
    history = train(model, loss_fn, batch, tc, device=device)
    tail = history["loss"][-max(1, len(history["loss"]) // 10) :]
    return model.eval(), {"final_loss": float(np.mean(tail))}


@torch.no_grad()
def generate(
    model: InstantFamily,
    encoder: IdentityEncoder,
    refs: Tensor,
    boxes: Tensor,
    colour: Tensor,
    *,
    steps: int = 20,
    guidance: float = 2.0,
    seed: int = 0,
) -> Tensor:
    """New canvases (B, 3, S, S) in [-1, 1] from identity images ``refs`` (B, K, 3, 16, 16)
    in [0, 1], ``boxes`` (B, K, 3) and background ``colour`` ids (B,): DDIM with classifier-
    free guidance of scale ``guidance``."""
    size = model.cfg.size
    if refs.dim() != 5 or refs.shape[2:] != (3, FACE_PX, FACE_PX):
        raise ValueError(f"refs: want (B, K, 3, {FACE_PX}, {FACE_PX}), got {tuple(refs.shape)}")
    if boxes.shape[:2] != refs.shape[:2]:
        raise ValueError(f"boxes: {tuple(boxes.shape[:2])} (B, K) != refs' {tuple(refs.shape[:2])}")
    for b in boxes:
        check_boxes(b, size)
    if (
        colour.shape != (refs.shape[0],)
        or int(colour.min()) < 0
        or int(colour.max()) >= len(COLOURS)
    ):
        raise ValueError(f"colour: want (B,) ids in [0, {len(COLOURS)})")
    device = next(model.parameters()).device
    g, loc = id_features(encoder, refs)
    cond = Condition(colour, g, loc, boxes.float(), pose_image(boxes.float(), size)).to(device)
    return ddim_sample(
        Guided(model, guidance),
        (refs.shape[0], 3, size, size),
        steps=steps,
        seed=seed,
        cond=cond,
        scheduler=make_scheduler("ddim", prediction_type=model.cfg.prediction),
        device=str(device),
    )
