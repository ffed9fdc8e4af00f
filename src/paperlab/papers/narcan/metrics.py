"""What the claims measure, against the ground truth the synthetic clips carry.

- :func:`psnr`: images in [-1, 1] compared on the [0, 1] scale.
- :func:`canonical_psnr`: the fitted canonical against the true one. The fit's canonical frame
  is its own (any homography of the true one fits the frames equally well), so the learned
  canonical coordinates of every frame pixel are first matched to the true ones by the
  least-squares homography G (normalised DLT); the fitted f is then read at G(p) for every true
  canonical pixel p seen by some frame and compared there.
- :func:`warping_error` and :func:`interpolation_error`: the temporal-consistency measures the
  paper reports for edited videos (Table 1), with the generator's exact optical flow in place
  of RAFT: a frame against its successor warped back along the flow (Lai et al. 2018), and a
  frame against the mean of both neighbours warped to it (Middlebury's interpolation error),
  over pixels visible in the frames involved.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from paperlab.papers.narcan.fields import NaRCan
from paperlab.papers.narcan.video import SyntheticClip, apply_h, pixel_grid, sample


def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None) -> float:
    """PSNR (dB) of images in [-1, 1] on the [0, 1] scale; ``mask`` (H, W) restricts it."""
    d = ((a - b) / 2) ** 2
    if mask is not None:
        d = d[..., mask]
    mse = float(d.mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def fit_homography_dlt(src: Tensor, dst: Tensor) -> Tensor:
    """The 3x3 homography G with dst ~ G(src) in the least-squares (DLT) sense, on
    Hartley-normalised points (N >= 4)."""

    def normaliser(p: np.ndarray) -> np.ndarray:
        c = p.mean(0)
        s = math.sqrt(2) / max(float(np.sqrt(((p - c) ** 2).sum(1)).mean()), 1e-12)
        return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])

    a, b = src.double().numpy(), dst.double().numpy()
    ta, tb = normaliser(a), normaliser(b)
    pa = (ta @ np.c_[a, np.ones(len(a))].T).T
    pb = (tb @ np.c_[b, np.ones(len(b))].T).T
    x, y, u, v = pa[:, 0], pa[:, 1], pb[:, 0], pb[:, 1]
    z, o = np.zeros_like(x), np.ones_like(x)
    rows = np.concatenate(
        [
            np.stack([-x, -y, -o, z, z, z, u * x, u * y, u], 1),
            np.stack([z, z, z, -x, -y, -o, v * x, v * y, v], 1),
        ]
    )
    h = np.linalg.svd(rows, full_matrices=False)[2][-1].reshape(3, 3)
    g = np.linalg.inv(tb) @ h @ ta
    return torch.from_numpy(g / g[2, 2]).float()


@torch.no_grad()
def canonical_psnr(model: NaRCan, clip: SyntheticClip) -> dict[str, float]:
    """The fitted canonical against the true one after the best homography alignment G:
    ``canonical_psnr`` over the true canonical's pixels seen by some frame, ``region_psnr``
    over every true pixel inside the rendered canonical image (the region box, where unseen
    pixels are the fields' extrapolation: the image an editor is handed), and the alignment's
    RMS residual (canonical units)."""
    model = model.cpu()
    learned = model.canonical_coords()
    _, _, h, w = clip.frames.shape
    grid = pixel_grid(h, w)
    true = torch.cat([clip.warp(k, grid) for k in range(len(clip.frames))])
    g = fit_homography_dlt(true, learned)
    residual = float(((apply_h(g, true) - learned) ** 2).sum(-1).mean().sqrt())
    hc, wc = clip.canonical.shape[1:]
    q = apply_h(g, pixel_grid(hc, wc) * clip.extent)
    fitted = model.canonical(q).clamp(-1, 1).T.reshape(3, hc, wc)
    seen = clip.coverage()
    x0, y0, x1, y1 = model.region.tolist()
    inside = ((q[:, 0] >= x0) & (q[:, 0] <= x1) & (q[:, 1] >= y0) & (q[:, 1] <= y1)).view(hc, wc)
    return {
        "canonical_psnr": psnr(fitted, clip.canonical, seen),
        "region_psnr": psnr(fitted, clip.canonical, inside),
        "region_seen_fraction": float(seen[inside].float().mean()),
        "alignment_rms": residual,
    }


def frame_psnr(frames: Tensor, target: Tensor) -> float:
    """Mean PSNR over frames (F, 3, H, W) in [-1, 1]."""
    return float(np.mean([psnr(a, b) for a, b in zip(frames, target, strict=True)]))


def _warp_from(clip: SyntheticClip, video: Tensor, k: int, j: int) -> tuple[Tensor, Tensor]:
    """Frame j of ``video`` read at the points matching frame k's pixels (H*W, C) and their
    validity (H*W,)."""
    xy, valid = clip.correspondence(k, j)
    return sample(video[j], xy), valid


# DEVIATION: both errors use the clip's exact flow (SyntheticClip.correspondence), not RAFT
def warping_error(video: Tensor, clip: SyntheticClip) -> float:
    """Mean over consecutive pairs of the masked MSE (on [0, 1]) between frame t and frame
    t + 1 warped back to t along the true flow (x 1000 in reports)."""
    errors = []
    for k in range(len(video) - 1):
        warped, valid = _warp_from(clip, video, k, k + 1)
        here = video[k].permute(1, 2, 0).reshape(-1, video.shape[1])
        d = (((here - warped) / 2) ** 2).mean(-1)
        errors.append(float(d[valid].mean()))
    return float(np.mean(errors))


def interpolation_error(video: Tensor, clip: SyntheticClip) -> float:
    """Mean over inner frames of the RMS error (0-255 scale, as Middlebury) between frame t and
    the mean of frames t - 1 and t + 1 warped to it along the true flow."""
    errors = []
    for k in range(1, len(video) - 1):
        prev, v0 = _warp_from(clip, video, k, k - 1)
        nxt, v1 = _warp_from(clip, video, k, k + 1)
        here = video[k].permute(1, 2, 0).reshape(-1, video.shape[1])
        d = ((here - (prev + nxt) / 2) * 127.5) ** 2
        valid = v0 & v1
        errors.append(float(d[valid].mean().sqrt()))
    return float(np.mean(errors))
