"""The base text-to-video model of the miniature: an AnimateDiff-style diffusers
``UNetMotionModel`` (spatial ResNet + cross-attention blocks, a temporal transformer with two
temporal self-attentions after each), conditioned on the prompt "{colour} {shape}" through two
learned token embeddings (the stand-in for CLIP's text encoder), with an empty-prompt pair of
tokens for classifier-free guidance and for MotionClone's reference pass.

Why ``UNetMotionModel``: MotionClone's official code runs AnimateDiff (SD-1.5 + motion module
v3) and guides the motion modules' temporal attention; diffusers' ``UNetMotionModel`` is that
architecture (its ``motion_modules.*.attn1/attn2`` are AnimateDiff's two ``Temporal_Self``
attentions), so the guided layers are named and placed as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from paperlab.core.diffusion import PREDICTION_TYPES, tiny_motion_unet
from paperlab.papers.motionclone.data import COLOURS, SHAPES


@dataclass(frozen=True)
class VideoModelConfig:
    size: int = 16
    frames: int = 8
    widths: tuple[int, ...] = (16, 32)
    text_dim: int = 32
    heads: int = 2
    # what the UNet predicts (diffusers' prediction_type): "epsilon" (the noise, as SD-1.5 and
    # AnimateDiff), "v_prediction" or "sample" (x0)
    prediction: str = "sample"

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTION_TYPES:
            raise ValueError(f"prediction={self.prediction!r}: choose one of {PREDICTION_TYPES}")
        if self.size < 16 or self.size % 2 ** (len(self.widths) - 1):
            raise ValueError(f"size={self.size}: need >= 16 and divisible by 2**(len(widths)-1)")
        if self.frames < 2 or self.text_dim < 1 or self.heads < 1:
            raise ValueError("frames >= 2, text_dim >= 1 and heads >= 1 please")


class ClipDenoiser(nn.Module):
    """eps_theta(x_t, t, prompt): x_t (B, 3, F, H, W); prompt (B, 2) token ids (colour, shape);
    id ``len(COLOURS)`` / ``len(SHAPES)`` is the empty prompt's token."""

    def __init__(self, cfg: VideoModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.colour = nn.Embedding(len(COLOURS) + 1, cfg.text_dim)
        self.shape = nn.Embedding(len(SHAPES) + 1, cfg.text_dim)
        self.unet = tiny_motion_unet(
            image_size=cfg.size,
            num_frames=cfg.frames,
            widths=cfg.widths,
            cross_attention_dim=cfg.text_dim,
            heads=cfg.heads,
        )

    def text(self, prompt: Tensor) -> Tensor:
        """(B, 2) ids -> (B, 2, text_dim) 'text encoder' states."""
        return torch.stack([self.colour(prompt[:, 0]), self.shape(prompt[:, 1])], dim=1)

    def forward(self, x_t: Tensor, t: Tensor, prompt: Tensor) -> Tensor:
        b, _, f = x_t.shape[:3]
        if t.dim() == 0:
            t = t.expand(b)
        states = self.text(prompt).repeat_interleave(f, dim=0)  # one text per frame (AnimateDiff)
        return self.unet(x_t, t, encoder_hidden_states=states).sample


def empty_prompt(batch: int = 1, device: str | torch.device = "cpu") -> Tensor:
    """The empty prompt's token ids, (batch, 2)."""
    return torch.tensor([[len(COLOURS), len(SHAPES)]] * batch, device=device)


def temporal_attention_names(model: nn.Module, blocks: tuple[str, ...]) -> list[str]:
    """The temporal self-attention layers (``motion_modules``) inside the given UNet blocks,
    e.g. ``("up_blocks.1",)`` as in the official config (``motion_guidance_blocks``)."""
    names = [
        n
        for n, _ in model.named_modules()
        if ".motion_modules." in n
        and n.rsplit(".", 1)[-1] in ("attn1", "attn2")
        and any(f"unet.{b}." in n for b in blocks)
    ]
    if not names:
        raise ValueError(f"blocks={blocks}: no temporal attention there")
    return names
