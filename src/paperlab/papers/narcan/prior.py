"""The diffusion prior: the stand-in for SD-2 (inpainting) + a RealFill LoRA (Sec. 3.2).

The paper fine-tunes LoRA weights of Stable Diffusion 2 on the input frames (RealFill's
recipe: rank 8, alpha 16) and refines the rendered canonical image with SDEdit at a scheduled
strength (``StableDiffusionInpaintPipeline`` with an all-ones mask, DDIM, guidance 1, the
prompt "a photo of sks"). Here:

- :func:`pretrain_prior`: a tiny pixel-space DDPM (``core.diffusion.tiny_unet``) trained on
  random patches of OTHER scikit-image photos (never the clip's own picture): the "pre-trained
  model" that knows natural image statistics but not this scene;
- :func:`lora_finetune`: LoRA (peft, through ``core.diffusion.add_lora``) on patches of the
  clip's frames: the RealFill step that teaches it this scene;
- :class:`DiffusionPrior`: ``refine(canonical, strength, seed)`` = SDEdit with that model
  (``core.diffusion.sdedit``), the target of NaRCan's diffusion loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.diffusion import add_lora, sdedit, tiny_unet, train_diffusion
from paperlab.papers.narcan.video import PICTURES, picture

# DEVIATION: LoRA on the UNet's convolutions as well as its attention projections (RealFill
# adapts SD's attention layers; our tiny UNet has attention only at its lowest resolution)
LORA_TARGETS: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2")


@dataclass(frozen=True)
class PriorConfig:
    """The prior's size and training (the defaults are the miniature's)."""

    patch: int = 16  # training patches (px); the UNet is convolutional, applied at any size
    widths: tuple[int, ...] = (8, 16, 32)
    pretrain_steps: int = 400
    pretrain_patches: int = 4096
    batch_size: int = 16
    lr: float = 2e-3
    lora_rank: int = 8  # RealFill's scripts/train.sh: rank 8, alpha 16
    lora_alpha: float = 16.0
    lora_steps: int = 100
    lora_lr: float = 2e-3  # DEVIATION: 2e-4 (RealFill's UNet lr) is for 2000 steps
    sdedit_steps: int = 10  # DEVIATION: DDIM steps of a full denoise (official: 60)


def _patches(images: list[Tensor], n: int, patch: int, seed: int) -> Tensor:
    """``n`` random ``patch``-px crops (random horizontal flips) of (3, H, W) images."""
    rng = np.random.default_rng(seed)
    out = torch.empty(n, 3, patch, patch)
    for i in range(n):
        im = images[rng.integers(len(images))]
        top = rng.integers(im.shape[1] - patch + 1)
        left = rng.integers(im.shape[2] - patch + 1)
        crop = im[:, top : top + patch, left : left + patch]
        out[i] = crop.flip(-1) if rng.random() < 0.5 else crop
    return out


def pretraining_images(exclude: str, sizes: tuple[int, ...] = (48, 64, 96)) -> list[Tensor]:
    """Every bundled photo but ``exclude`` (the clip's own), at a few scales, in [-1, 1]."""
    return [picture(name, s) for name in PICTURES if name != exclude for s in sizes]


def build_prior_unet(cfg: PriorConfig) -> nn.Module:
    return tiny_unet(image_size=cfg.patch, widths=cfg.widths)


# DEVIATION: a tiny pixel DDPM on 16-px patches of four other photos stands in for SD-2
# (inpainting, VAE, text encoder); no prompt and no mask (the official mask is all ones)
def pretrain_prior(
    cfg: PriorConfig, *, exclude: str, seed: int = 0, device: str = "cpu", progress: bool = False
) -> tuple[nn.Module, dict]:
    """The base prior: a DDPM on patches of the photos other than ``exclude``."""
    data = _patches(pretraining_images(exclude), cfg.pretrain_patches, cfg.patch, seed)
    torch.manual_seed(seed)
    unet = build_prior_unet(cfg)
    hist = train_diffusion(
        unet,
        data,
        steps=cfg.pretrain_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=seed,
        device=device,
        progress=progress,
        warmup_steps=max(1, cfg.pretrain_steps // 20),
    )
    return unet.eval(), {"loss": float(np.mean(hist["loss"][-5:])), "seconds": hist["seconds"][0]}


def lora_prior(cfg: PriorConfig, base: nn.Module) -> nn.Module:
    """A copy of ``base`` with LoRA adapters (the base weights frozen)."""
    model = build_prior_unet(cfg)
    model.load_state_dict(base.state_dict())
    return add_lora(model, r=cfg.lora_rank, alpha=cfg.lora_alpha, target_modules=LORA_TARGETS)


def lora_finetune(
    cfg: PriorConfig,
    base: nn.Module,
    frames: Tensor,
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[nn.Module, dict]:
    """RealFill's step: LoRA on random patches of the clip's frames (F, 3, H, W) in [-1, 1]."""
    if frames.shape[-1] < cfg.patch or frames.shape[-2] < cfg.patch:
        raise ValueError(
            f"frames: {tuple(frames.shape)} smaller than the prior's patch {cfg.patch}"
        )
    data = _patches(list(frames), cfg.pretrain_patches // 4, cfg.patch, seed + 1)
    torch.manual_seed(seed)  # peft draws lora_A from the global generator
    model = lora_prior(cfg, base)
    hist = train_diffusion(
        model,
        data,
        steps=cfg.lora_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lora_lr,
        seed=seed,
        device=device,
        progress=progress,
    )
    return model.eval(), {"loss": float(np.mean(hist["loss"][-5:])), "seconds": hist["seconds"][0]}


class DiffusionPrior:
    """``refine(image, strength, seed)``: SDEdit of a (3, S, S) image in [-1, 1] with ``model``
    (S a multiple of the UNet's downsampling)."""

    def __init__(self, model: nn.Module, *, steps: int = 10) -> None:
        if steps < 1:
            raise ValueError(f"steps={steps}: must be >= 1")
        self.model, self.steps = model.eval(), steps

    def refine(self, image: Tensor, strength: float, seed: int) -> Tensor:
        device = next(self.model.parameters()).device
        out = sdedit(
            self.model, image[None].to(device), strength=strength, steps=self.steps, seed=seed
        )
        return out[0].clamp(-1, 1).to(image.device)

    __call__ = refine

    def refine_batch(self, images: Tensor, strength: float, seed: int) -> Tensor:
        """SDEdit of a batch (B, 3, H, W), one noise draw for the batch (e.g. per-frame edits)."""
        device = next(self.model.parameters()).device
        out = sdedit(self.model, images.to(device), strength=strength, steps=self.steps, seed=seed)
        return out.clamp(-1, 1).to(images.device)


def corrupt(image: Tensor, *, seed: int, amount: float = 0.15) -> Tensor:
    """The power check's damage: smooth high-frequency ripples (the SIREN's typical artefact)
    and pixel noise added to a (3, H, W) image in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    _, h, w = image.shape
    ripples = F.interpolate(
        torch.randn(1, 3, h // 4, w // 4, generator=gen),
        size=(h, w),
        mode="bicubic",
        align_corners=False,
    )[0]
    noise = torch.randn(image.shape, generator=gen)
    return (image + amount * (ripples + 0.5 * noise)).clamp(-1, 1)
