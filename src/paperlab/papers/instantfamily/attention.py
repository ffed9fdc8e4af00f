"""Masked cross-attention (InstantFamily Sec. 3.3), as a diffusers attention processor.

    Attention(Q, K, V, M) = softmax(M ⊙ QKᵀ / √d) V

The key/value sequence is the multimodal embedding stack: text tokens, then each person's
identity tokens. ``M[p, j] = 1`` when query pixel ``p`` may see token ``j``: every pixel sees
the text; a pixel inside person i's region (the box grown by the 25% margin) also sees person
i's identity tokens; a background pixel sees the text only.

The paper writes the mask as an elementwise product with the logits (``mode="multiply"``):
a masked logit becomes 0, not -inf, so after the softmax a masked token still gets weight
exp(0)/Z - the same for every masked token whatever its key - and its value still flows into
the output. ``mode="neg_inf"`` sets masked logits to -inf instead (masked tokens get exactly
zero weight). ``mode="none"`` is the unmasked baseline (every pixel sees every token).

Which token belongs to whom travels with the call: the model passes
``cross_attention_kwargs={"region": RegionMask(...)}``; the processor builds M at its own
resolution from the boxes (cell centres inside the grown box).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from paperlab.papers.instantfamily.data import MARGIN

MASK_MODES = ("multiply", "neg_inf", "none")


@dataclass
class RegionMask:
    """Who sees what: ``boxes`` (B, K, 3) as (x, y, side) in canvas pixels, ``owner`` (L,) the
    owner of each key token (-1 = text, k = person k), ``size`` the canvas side (px), ``mode``
    one of MASK_MODES."""

    boxes: Tensor
    owner: Tensor
    size: int
    mode: str = "multiply"
    # M per (height, width, dtype): one RegionMask serves every attention call of a forward
    # pass (UNet and control branch), so each resolution's mask is built once, not per call
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MASK_MODES:
            raise ValueError(f"mode={self.mode!r}: choose one of {MASK_MODES}")
        if self.boxes.dim() != 3 or self.boxes.shape[-1] != 3:
            raise ValueError(f"boxes: want (B, K, 3), got {tuple(self.boxes.shape)}")
        if self.owner.dim() != 1 or int(self.owner.max()) >= self.boxes.shape[1]:
            raise ValueError("owner: want (L,) ids in [-1, K) for K boxes")

    def inside(self, height: int, width: int) -> Tensor:
        """(B, K, height*width) bool: the cell centre lies in person k's grown box."""
        ys = (torch.arange(height, device=self.boxes.device) + 0.5) * self.size / height
        xs = (torch.arange(width, device=self.boxes.device) + 0.5) * self.size / width
        x, y, s = (self.boxes[..., i, None] for i in range(3))  # (B, K, 1)
        pad = MARGIN * s / 2
        in_x = (xs >= x - pad) & (xs < x + s + pad)  # (B, K, W)
        in_y = (ys >= y - pad) & (ys < y + s + pad)  # (B, K, H)
        return (in_y.unsqueeze(-1) & in_x.unsqueeze(-2)).flatten(2)

    def mask(self, height: int, width: int) -> Tensor:
        """M: (B, height*width, L) bool (built once per resolution, then reused)."""
        key = (height, width, None)
        if key not in self._cache:
            self._cache[key] = self._build(height, width)
        return self._cache[key]

    def weights(self, height: int, width: int, dtype: torch.dtype) -> Tensor:
        """M as (B, 1, height*width, L) in ``dtype`` (the processor's broadcast over heads)."""
        key = (height, width, dtype)
        if key not in self._cache:
            self._cache[key] = self.mask(height, width).unsqueeze(1).to(dtype)
        return self._cache[key]

    def _build(self, height: int, width: int) -> Tensor:
        owner = self.owner.to(self.boxes.device)
        inside = self.inside(height, width)  # (B, K, P)
        text = owner < 0
        person = inside[:, owner.clamp(min=0), :].transpose(1, 2)  # (B, P, L)
        if self.mode == "none":
            return torch.ones_like(person)
        return person | text.view(1, 1, -1)


def masked_logits(logits: Tensor, mask: Tensor, mode: str) -> Tensor:
    """Apply M to logits (..., P, L): ``multiply`` (M ⊙ logits, the paper's formula),
    ``neg_inf`` (-inf where M = 0) or ``none``."""
    if mode == "multiply":
        return logits * mask.to(logits.dtype)
    if mode == "neg_inf":
        return logits.masked_fill(~mask, float("-inf"))
    if mode == "none":
        return logits
    raise ValueError(f"mode={mode!r}: choose one of {MASK_MODES}")


class MaskedAttnProcessor:
    """diffusers' plain attention with the region mask on cross-attention (``attn2``); self-
    attention (no ``encoder_hidden_states``) and calls without ``region`` run unmasked.
    ``record``: keep the last probabilities (B, heads, P, L) in ``self.probs`` (tests)."""

    def __init__(self, *, record: bool = False) -> None:
        self.record = record
        self.probs: Tensor | None = None

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        region: RegionMask | None = None,
    ) -> Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        ndim = hidden_states.ndim
        if ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        cross = encoder_hidden_states is not None
        context = encoder_hidden_states if cross else hidden_states
        if cross and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        batch, queries, _ = hidden_states.shape
        heads = attn.heads
        q = attn.to_q(hidden_states).view(batch, queries, heads, -1).transpose(1, 2)
        k = attn.to_k(context).view(batch, context.shape[1], heads, -1).transpose(1, 2)
        v = attn.to_v(context).view(batch, context.shape[1], heads, -1).transpose(1, 2)
        logits = (q * attn.scale) @ k.transpose(-1, -2)  # (B, heads, P, L): QKᵀ/√d
        if cross and region is not None and region.mode != "none":
            side = math.isqrt(queries)  # our UNets' feature maps are square
            if side * side != queries:
                raise ValueError(f"region: {queries} query pixels are not a square map")
            if region.mode == "multiply":  # M ⊙ logits, M cached per resolution
                logits = logits.mul_(region.weights(side, side, logits.dtype))
            else:
                logits = masked_logits(logits, region.mask(side, side).unsqueeze(1), region.mode)
        probs = logits.softmax(-1)
        if self.record and cross:
            self.probs = probs.detach()
        out = (probs @ v).transpose(1, 2).reshape(batch, queries, -1)
        out = attn.to_out[1](attn.to_out[0](out))
        if ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def install_masked_attention(model: nn.Module, *, record: bool = False) -> list[str]:
    """Give every diffusers ``Attention`` of ``model`` (a UNet, a ControlNet or a module that
    holds them) a :class:`MaskedAttnProcessor`; returns the cross-attention layers' names."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, Attention):
            module.set_processor(MaskedAttnProcessor(record=record))
            if module.is_cross_attention:
                names.append(name)
    if not names:
        raise ValueError("model: no cross-attention layer to mask")
    return names
