"""A clip in, a fitted NaRCan out, and back: what ``paperlab narcan fit`` and ``edit`` run.

model = fit_video(frames, steps=600, prior=True, seed=0)    # frames (F, 3, H, W) in [-1, 1]
save_fit(model, "fit/")         # fit/fields.safetensors + fit/canonical.png
model = load_fit("fit/")
frames = model.propagate(edited_canonical)                   # (F, 3, H, W)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from paperlab.core.checkpoint import load_model, save_model
from paperlab.papers.narcan.fields import NaRCan
from paperlab.papers.narcan.fit import (
    PriorSchedule,
    PriorTarget,
    fit_fields,
    fit_homography,
    stage_two_model,
)
from paperlab.papers.narcan.prior import DiffusionPrior, PriorConfig, lora_finetune, pretrain_prior

KIND = "NaRCan"
FIELDS_FILE = "fields.safetensors"
CANONICAL_FILE = "canonical.png"


def fit_video(
    frames: Tensor,
    *,
    homography_steps: int = 300,
    steps: int = 600,
    lr: float = 1e-3,
    hidden: int = 64,
    layers: int = 3,
    canonical_size: int = 48,
    prior: bool | DiffusionPrior = True,
    prior_config: PriorConfig | None = None,
    exclude_picture: str = "",
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[NaRCan, dict[str, Any]]:
    """Both stages on ``frames`` (F, 3, H, W) in [-1, 1]. ``prior``: True pre-trains the tiny
    prior on the bundled photos (but ``exclude_picture``) and LoRA-tunes it on the frames;
    a :class:`DiffusionPrior` is used as given; False fits without a prior."""
    if not isinstance(frames, Tensor) or frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(
            f"frames: want (F, 3, H, W) in [-1, 1], got {getattr(frames, 'shape', frames)}"
        )
    if frames.shape[0] < 2:
        raise ValueError(f"frames: a clip needs at least 2 frames, got {frames.shape[0]}")
    info: dict[str, Any] = {}
    if prior is True:
        pcfg = prior_config or PriorConfig()
        base, info["pretrain"] = pretrain_prior(
            pcfg, exclude=exclude_picture, seed=seed, device=device, progress=progress
        )
        tuned, info["lora"] = lora_finetune(
            pcfg, base, frames, seed=seed, device=device, progress=progress
        )
        prior = DiffusionPrior(tuned, steps=pcfg.sdedit_steps)
    stage1, _ = fit_homography(
        frames,
        steps=homography_steps,
        lr=lr,
        hidden=hidden,
        layers=layers,
        canonical_size=canonical_size,
        seed=seed,
        device=device,
        progress=progress,
    )
    model = stage_two_model(stage1, seed=seed, hidden=hidden, layers=layers)
    target = None
    if isinstance(prior, DiffusionPrior):
        target = PriorTarget(prior.refine, PriorSchedule.scaled(steps), seed=seed)
    hist = fit_fields(
        model, frames, steps=steps, lr=lr, prior=target, seed=seed, device=device, progress=progress
    )
    info["loss"] = hist["loss"][-1]
    info["prior_calls"] = target.calls if target is not None else 0
    return model.cpu().eval(), info


def save_fit(model: NaRCan, folder: str | os.PathLike) -> Path:
    """``folder/fields.safetensors`` (the three fields, the region, the config) and
    ``folder/canonical.png`` (the canonical image to edit)."""
    from paperlab.core.data.image_io import save_png

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(folder / FIELDS_FILE, model, kind=KIND, config=model.config)
    with torch.no_grad():
        save_png((model.render_canonical() + 1) / 2, folder / CANONICAL_FILE)
    return folder


def load_fit(folder: str | os.PathLike, *, device: str = "cpu") -> NaRCan:
    """A :class:`NaRCan` saved by :func:`save_fit` (a folder or the .safetensors file)."""
    path = Path(folder)
    path = path / FIELDS_FILE if path.is_dir() else path
    if not path.is_file():
        raise ValueError(f"no fitted NaRCan at {folder} (expected {FIELDS_FILE})")
    model, _ = load_model(path, lambda cfg: NaRCan(**cfg), kind=KIND, map_location=device)
    model.homography.requires_grad_(False)
    return model.eval()


def paste_sticker(canonical: Tensor, *, seed: int = 0) -> Tensor:
    """A demo edit: a red-and-white ring painted on a (3, H, W) image in [-1, 1] near its centre."""
    _, h, w = canonical.shape
    gen = torch.Generator().manual_seed(seed)
    cy, cx = (0.5 + 0.2 * (torch.rand(2, generator=gen) - 0.5)).tolist()
    ys = torch.linspace(0, 1, h)[:, None]
    xs = torch.linspace(0, 1, w)[None, :]
    r = ((ys - cy) ** 2 + (xs - cx) ** 2).sqrt()
    out = canonical.clone()
    ring = (r > 0.09) & (r < 0.16)
    dot = r <= 0.09
    out[:, ring] = torch.tensor([0.9, -0.8, -0.8])[:, None]
    out[:, dot] = 1.0
    return out
