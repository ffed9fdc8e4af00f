"""Depth Anything V2's training losses (Sec. 4 / App. B; MiDaS, Ranftl et al. 2020, Sec. 5).

Both work on disparity maps normalised per image to zero translation and unit scale:
``d_hat = (d - median(d)) / mean(|d - median(d)|)`` over the valid pixels (MiDaS Eq. 6-7), so
any prediction ``s * target + t`` (s > 0) costs nothing.

- ``L_ssi``: mean |d_hat_pred - d_hat_target| over the valid pixels (MiDaS Eq. 5, rho = |.|).
- ``L_gm``: gradient matching on the residual R = d_hat_pred - d_hat_target, at 4 scales (the
  maps sub-sampled by 1, 2, 4, 8): sum |grad_x R| + |grad_y R| / valid pixels (MiDaS Eq. 11).
  It sharpens depth edges; V2 weights it 2 against L_ssi's 1 (App. B).
- On pseudo-labelled images, the ``top_ignore`` = 10% of valid pixels with the largest
  per-pixel L_ssi are left out of both terms (Sec. 4, inherited from V1's noisy-label recipe).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    if pred.ndim != 3 or pred.shape != target.shape:
        raise ValueError(
            f"pred: expected (B, H, W) like target, got {tuple(pred.shape)} vs "
            f"{tuple(target.shape)}"
        )
    if mask is None:
        return torch.ones_like(target, dtype=torch.bool)
    if mask.shape != target.shape:
        raise ValueError(f"mask: shape {tuple(mask.shape)} != target {tuple(target.shape)}")
    return mask.bool()


def normalize_ssi(d: Tensor, mask: Tensor) -> Tensor:
    """Per image: (d - median) / mean |d - median| over ``mask`` (MiDaS Eq. 6-7).
    Pixels outside the mask are returned as 0."""
    nan = torch.full_like(d, float("nan"))
    t = torch.where(mask, d, nan).flatten(1).nanmedian(1).values.nan_to_num(0.0)[:, None, None]
    count = mask.flatten(1).sum(1).clamp_min(1)[:, None, None]
    s = (((d - t).abs() * mask).flatten(1).sum(1)[:, None, None] / count).clamp_min(1e-6)
    return torch.where(mask, (d - t) / s, torch.zeros_like(d))


def ssi_residual(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """(B, H, W) per-pixel |d_hat_pred - d_hat_target| (0 outside the mask)."""
    mask = _check(pred, target, mask)
    return (normalize_ssi(pred, mask) - normalize_ssi(target, mask)).abs() * mask


def top_loss_mask(residual: Tensor, mask: Tensor, top_ignore: float) -> Tensor:
    """``mask`` without, per image, the ``top_ignore`` fraction of its valid pixels with the
    largest residual."""
    if not 0.0 <= top_ignore < 1.0:
        raise ValueError(f"top_ignore={top_ignore} must be in [0, 1)")
    if top_ignore == 0.0:
        return mask
    keep = mask.clone()
    for i in range(residual.shape[0]):
        n = int(mask[i].sum())
        k = int(n * top_ignore)
        if k == 0:
            continue
        values = torch.where(mask[i], residual[i], torch.full_like(residual[i], -1.0)).flatten()
        drop = values.topk(k).indices
        keep[i].view(-1)[drop] = False
    return keep


def gradient_matching_loss(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, *, scales: int = 4
) -> Tensor:
    """MiDaS' multi-scale gradient matching on R = pred - target (already normalised maps):
    sum over ``scales`` of sum(|grad R| on valid neighbours) / number of valid pixels."""
    mask = _check(pred, target, mask)
    total = pred.new_zeros(())
    for k in range(scales):
        step = 2**k
        r = (pred - target)[:, ::step, ::step]
        m = mask[:, ::step, ::step].to(pred.dtype)
        gx = (r[:, :, 1:] - r[:, :, :-1]).abs() * m[:, :, 1:] * m[:, :, :-1]
        gy = (r[:, 1:, :] - r[:, :-1, :]).abs() * m[:, 1:, :] * m[:, :-1, :]
        total = total + (gx.sum() + gy.sum()) / m.sum().clamp_min(1.0)
    return total


def depth_loss(
    pred: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    *,
    gm_weight: float = 2.0,
    top_ignore: float = 0.0,
    scales: int = 4,
) -> tuple[Tensor, dict[str, float]]:
    """``L_ssi + gm_weight * L_gm`` on (B, H, W) disparity maps (V2: gm_weight 2; top_ignore
    0.1 on pseudo-labels, 0 on synthetic labels). Returns (loss, {"ssi": .., "gm": ..})."""
    mask = _check(pred, target, mask)
    pred_n, target_n = normalize_ssi(pred, mask), normalize_ssi(target, mask)
    residual = (pred_n - target_n).abs() * mask
    keep = top_loss_mask(residual.detach(), mask, top_ignore)
    ssi = (residual * keep).sum() / keep.sum().clamp_min(1)
    gm = gradient_matching_loss(pred_n, target_n, keep, scales=scales) if gm_weight else ssi * 0
    loss = ssi + gm_weight * gm
    return loss, {"ssi": float(ssi.detach()), "gm": float(gm.detach())}
