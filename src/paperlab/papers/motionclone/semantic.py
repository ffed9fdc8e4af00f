"""Location-aware semantic guidance, the optional second guidance of MotionClone's first version
(arXiv 2406.05338v1, Sec. 3.3; official code at commit 013e1ad, later removed from it).

Motion guidance alone can drag the reference's appearance into the clone. The first version
added an *appearance branch*: the new prompt sampled plainly (CFG, no guidance) from the same
noise, alongside the guided clip. At every guided step the guided clip's features are pulled
towards the appearance branch's, separately for foreground and background:

1. Masks from cross-attention (``compute_cross_attn_mask``): the attention probability of the
   subject's text token, averaged over heads and the layers of the first cross-attention up
   block, min-max normalised over the pixels of each frame and thresholded (0.3 in the
   official configs). The *reference's* mask decides where the guided clip's subject must be
   (that is the "location-aware" part: the clone moves as the reference does); it is weighted
   by a Gaussian around the mask's centroid (sigma 5 at SD's 16 x 16), and its background is
   (1 - Gaussian)(1 - mask). The appearance branch's mask is the plain thresholded map.
2. The loss (``calculate_semantic_loss``, ``block_type: temp``): on the keys of the temporal
   attention layers of the chosen blocks, per frame, the mask-weighted mean key of the
   appearance branch's foreground vs the guided clip's foreground under the reference's mask,
   plus the same for the backgrounds, MSE each, averaged over layers and weighted. Without a
   subject (camera motion, ``obj_pairs`` empty) the global form: the appearance branch's mean
   key over pixels and frames vs the guided clip's per-frame mean key.
3. It is added to the motion loss inside the same gradient; the warm-up scales both, the
   cool-down silences only the motion term (``single_step_video``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Masks = tuple[Tensor, Tensor]  # (foreground, background) weights, each (B, F, H*W)


def cross_attention_names(model: nn.Module, blocks: tuple[str, ...]) -> list[str]:
    """The spatial cross-attention layers (``attentions.*.attn2``) inside the given UNet blocks;
    the official code reads them in SD's first cross-attention up block, ``up_blocks.1`` (in our
    tiny UNet, whose first up block has cross-attention, ``up_blocks.0``)."""
    names = [
        n
        for n, _ in model.named_modules()
        if ".attentions." in n and n.endswith(".attn2") and any(f"unet.{b}." in n for b in blocks)
    ]
    if not names:
        raise ValueError(f"semantic_blocks={blocks}: no cross-attention there")
    return names


@contextmanager
def recorded_keys(model: nn.Module, names: list[str]) -> Iterator[dict[str, Tensor]]:
    """Keeps the key projection (``to_k`` output) of each named attention layer while the block
    runs: for a temporal layer (B*H*W, F, inner_dim), in the autograd graph."""
    modules = dict(model.named_modules())
    keys: dict[str, Tensor] = {}
    handles = []
    for name in names:

        def hook(_m: nn.Module, _inputs: object, output: Tensor, name: str = name) -> None:
            keys[name] = output

        handles.append(modules[f"{name}.to_k"].register_forward_hook(hook))
    try:
        yield keys
    finally:
        for h in handles:
            h.remove()


def subject_map(maps: dict[str, Tensor], token: int, batch: int) -> Tensor:
    """(B, F, H*W): the subject token's cross-attention probability, averaged over the heads and
    the layers given (each (B*F, heads, H*W, L_text)), min-max normalised per frame."""
    probs = torch.stack([m[..., token] for m in maps.values()]).mean(dim=(0, 2))  # (B*F, HW)
    probs = probs.reshape(batch, -1, probs.shape[-1])
    low = probs.min(dim=-1, keepdim=True).values
    high = probs.max(dim=-1, keepdim=True).values
    return (probs - low) / (high - low + 1e-5)


def reference_masks(subject: Tensor, threshold: float, sigma: float) -> Masks:
    """The reference's foreground (Gaussian around the thresholded mask's centroid, times the
    mask) and background ((1 - Gaussian)(1 - mask)) weights, (B, F, H*W) each, square maps."""
    side = int(round(subject.shape[-1] ** 0.5))
    if side * side != subject.shape[-1]:
        raise ValueError(f"subject: {subject.shape[-1]} pixels is not a square map")
    mask = (subject > threshold).to(subject.dtype)
    grid = torch.arange(side, dtype=subject.dtype, device=subject.device)
    ys, xs = grid.repeat_interleave(side), grid.repeat(side)  # row-major pixel coordinates
    mass = mask.sum(dim=-1, keepdim=True)
    # an empty mask (a flat map) has no centroid: use the frame's centre
    centre = (side - 1) / 2
    cy = torch.where(mass > 0, (mask * ys).sum(-1, keepdim=True) / mass.clamp_min(1), centre)
    cx = torch.where(mass > 0, (mask * xs).sum(-1, keepdim=True) / mass.clamp_min(1), centre)
    gauss = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2))
    return gauss * mask, (1 - gauss) * (1 - mask)


def appearance_masks(subject: Tensor, threshold: float) -> Masks:
    """The appearance branch's thresholded mask and its complement, (B, F, H*W) each."""
    mask = (subject > threshold).to(subject.dtype)
    return mask, 1 - mask


def _resize(weights: Tensor, pixels: int) -> Tensor:
    """(B, F, P) mask weights to (B, F, pixels), nearest neighbour (the official interpolation
    of the up_blocks.1 masks to the other blocks)."""
    if weights.shape[-1] == pixels:
        return weights
    b, f, p = weights.shape
    side, new = int(round(p**0.5)), int(round(pixels**0.5))
    out = F.interpolate(weights.reshape(b * f, 1, side, side), size=(new, new), mode="nearest")
    return out.reshape(b, f, pixels)


def _per_frame(keys: Tensor, batch: int) -> Tensor:
    """Temporal-attention keys (B*H*W, F, d) -> (B, F, H*W, d)."""
    rows, frames, dim = keys.shape
    return keys.reshape(batch, rows // batch, frames, dim).permute(0, 2, 1, 3)


def _masked_mean(keys: Tensor, weights: Tensor) -> Tensor:
    weights = _resize(weights, keys.shape[2]).unsqueeze(-1)  # (B, F, HW, 1)
    return (keys * weights).sum(dim=2) / (weights.sum(dim=2) + 1e-5)  # (B, F, d)


def semantic_loss(
    keys_app: dict[str, Tensor],
    keys_gen: dict[str, Tensor],
    batch: int,
    *,
    reference: Masks | None = None,
    appearance: Masks | None = None,
) -> Tensor:
    """The mean over layers of the location-aware loss (foreground and background mean keys of
    the appearance branch vs the guided clip under the reference's masks), or, without masks,
    of the global loss (the appearance branch's mean key vs the guided clip's per-frame one)."""
    if (reference is None) != (appearance is None):
        raise ValueError("reference and appearance masks: give both or neither")
    losses = []
    for name, k_app in keys_app.items():
        app, gen = _per_frame(k_app.detach(), batch), _per_frame(keys_gen[name], batch)
        if reference is None or appearance is None:
            target = app.mean(dim=(1, 2), keepdim=True).squeeze(2)  # (B, 1, d)
            losses.append(F.mse_loss(gen.mean(dim=2), target.expand(-1, gen.shape[1], -1)))
            continue
        fore = F.mse_loss(_masked_mean(gen, reference[0]), _masked_mean(app, appearance[0]))
        back = F.mse_loss(_masked_mean(gen, reference[1]), _masked_mean(app, appearance[1]))
        losses.append(fore + back)
    return torch.stack(losses).mean()
