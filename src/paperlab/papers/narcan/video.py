"""The miniature's clips: a picture seen through a moving camera (a smooth homography path)
with a local non-rigid wobble, so the true canonical image and every warp are known.

Coordinates follow ``grid_sample(align_corners=False)``: a frame's pixel centres are
``x = (2j + 1) / W - 1``, ``y = (2i + 1) / H - 1`` in [-1, 1]; times are ``t_k`` evenly in
[-1, 1]. Frame k's pixel x shows the canonical point ``W_k(x) = H_k(x) + b_k(x)``: the
homography of the camera, then a Gaussian bump that moves a region of the scene back and forth
(NaRCan Sec. 3.1's hybrid model, ``H(u, v, t) + g(u, v, t)``, is exactly this form). The true
canonical image covers ``[-extent, extent]^2`` at the frames' pixel pitch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# colour photos of scikit-image (bundled, no download); the clip uses one, the prior the others
PICTURES: tuple[str, ...] = ("chelsea", "coffee", "astronaut", "rocket", "immunohistochemistry")


def pixel_grid(height: int, width: int) -> Tensor:
    """(H*W, 2) pixel centres (x, y) in [-1, 1], row-major."""
    # DEVIATION: pixel centres (align_corners=False); the official get_mgrid includes borders
    ys = (torch.arange(height, dtype=torch.float32) * 2 + 1) / height - 1
    xs = (torch.arange(width, dtype=torch.float32) * 2 + 1) / width - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


def frame_times(num_frames: int) -> Tensor:
    """(F,) frame times evenly in [-1, 1] (the time input of the fields)."""
    if num_frames < 2:
        raise ValueError(f"num_frames={num_frames}: a clip needs at least 2 frames")
    return torch.linspace(-1.0, 1.0, num_frames)


def apply_h(h: Tensor, xy: Tensor) -> Tensor:
    """Apply 3x3 homographies ``h`` ((3, 3) or (N, 3, 3)) to points ``xy`` (N, 2)."""
    ones = torch.ones_like(xy[:, :1])
    p = torch.cat([xy, ones], dim=-1).unsqueeze(-1)  # (N, 3, 1)
    q = (h @ p).squeeze(-1) if h.dim() == 3 else (h @ p.squeeze(-1).T).T
    return q[:, :2] / q[:, 2:]


def sample(image: Tensor, xy: Tensor, extent: float = 1.0) -> Tensor:
    """Bilinear samples (N, C) of a (C, H, W) image covering [-extent, extent]^2 at points
    ``xy`` (N, 2) (grid_sample, align_corners=False, border padding)."""
    grid = (xy / extent).view(1, 1, -1, 2)
    out = F.grid_sample(
        image[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out[0, :, 0].T


def picture(name: str, size: int) -> Tensor:
    """A scikit-image colour photo, centre-cropped to a square and resized: (3, size, size) in
    [-1, 1]."""
    import skimage.data
    from PIL import Image

    if name not in PICTURES:
        raise ValueError(f"picture {name!r}: choose one of {', '.join(PICTURES)}")
    array = np.asarray(getattr(skimage.data, name)())[..., :3]
    h, w = array.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    im = Image.fromarray(array[top : top + s, left : left + s])
    im = im.resize((size, size), Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 127.5 - 1.0)
    return x.permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class Motion:
    """A camera path and a wobble: the parameters of the true warps (seeded)."""

    phases: tuple[float, ...]  # 7 random phases
    rotation: float = 0.08  # radians, amplitude
    zoom: float = 0.05  # relative scale amplitude
    shift: float = 0.2  # translation amplitude (canonical units)
    perspective: float = 0.03  # amplitude of the projective terms
    bump: float = 0.12  # peak displacement of the wobble (canonical units; 1/16 = 1 px)
    bump_width: float = 0.3  # Gaussian sigma of the wobble
    bump_centre: tuple[float, float] = (0.15, -0.1)  # in canonical coordinates

    def homography(self, t: float) -> Tensor:
        """H_t: frame coordinates -> canonical coordinates (3, 3)."""
        p = self.phases
        a = math.pi * t
        theta = self.rotation * math.sin(a + p[0])
        s = 1.0 + self.zoom * math.sin(a + p[1])
        tx, ty = self.shift * math.sin(0.9 * a + p[2]), self.shift * math.sin(0.7 * a + p[3])
        px, py = self.perspective * math.sin(a + p[4]), self.perspective * math.cos(a + p[5])
        c, si = s * math.cos(theta), s * math.sin(theta)
        return torch.tensor([[c, -si, tx], [si, c, ty], [px, py, 1.0]], dtype=torch.float32)

    def bump_at(self, t: float, canon: Tensor) -> Tensor:
        """b_t at canonical points (N, 2): a Gaussian region swinging back and forth."""
        centre = torch.tensor(self.bump_centre)
        w = torch.exp(-((canon - centre) ** 2).sum(-1, keepdim=True) / (2 * self.bump_width**2))
        a = 2 * math.pi * 0.75 * t + self.phases[6]
        direction = torch.tensor([math.cos(a), math.sin(a)])
        return self.bump * w * direction

    def warp(self, t: float, xy: Tensor) -> Tensor:
        """W_t(x) = H_t(x) + b_t(H_t(x)): where frame point x is in the canonical image."""
        h = apply_h(self.homography(t), xy)
        return h + self.bump_at(t, h)

    def unwarp(self, t: float, canon: Tensor, iters: int = 12) -> Tensor:
        """W_t^{-1}: the frame point showing canonical point ``canon`` (fixed-point iteration;
        the wobble is small and smooth, so it contracts)."""
        h_inv = torch.linalg.inv(self.homography(t))
        h = canon.clone()
        for _ in range(iters):  # solve h + b(h) = canon for h
            h = canon - self.bump_at(t, h)
        return apply_h(h_inv, h)


def random_motion(seed: int, **kw: float) -> Motion:
    rng = np.random.default_rng(seed)
    return Motion(phases=tuple(float(p) for p in rng.uniform(0, 2 * math.pi, 7)), **kw)


@dataclass(frozen=True, eq=False)
class SyntheticClip:
    """A clip with its ground truth: frames (F, 3, H, W) and the canonical (3, Hc, Wc), both in
    [-1, 1]; the canonical covers [-extent, extent]^2; ``motion`` holds the true warps."""

    frames: Tensor
    canonical: Tensor
    extent: float
    motion: Motion
    picture: str

    @property
    def times(self) -> Tensor:
        return frame_times(len(self.frames))

    def warp(self, k: int, xy: Tensor) -> Tensor:
        return self.motion.warp(float(self.times[k]), xy)

    def correspondence(self, k: int, j: int) -> tuple[Tensor, Tensor]:
        """For every pixel of frame k: the point of frame j showing the same scene point
        (H*W, 2), and whether it lies inside frame j (H*W,) (the exact optical flow)."""
        _, _, height, width = self.frames.shape
        canon = self.warp(k, pixel_grid(height, width))
        xy = self.motion.unwarp(float(self.times[j]), canon)
        return xy, (xy.abs() <= 1.0).all(-1)

    def coverage(self) -> Tensor:
        """(Hc, Wc) bool: canonical pixels seen by at least one frame."""
        hc, wc = self.canonical.shape[1:]
        canon = pixel_grid(hc, wc) * self.extent
        seen = torch.zeros(hc * wc, dtype=torch.bool)
        for k in range(len(self.frames)):
            xy = self.motion.unwarp(float(self.times[k]), canon)
            seen |= (xy.abs() <= 1.0).all(-1)
        return seen.view(hc, wc)


def make_clip(
    *,
    num_frames: int = 24,
    size: int = 32,
    picture_name: str = "chelsea",
    extent: float = 1.5,
    seed: int = 0,
    bump: float = 0.12,
) -> SyntheticClip:
    """Render ``num_frames`` frames of ``size`` px of a photo along a seeded camera path with a
    wobble of peak ``bump`` (canonical units). The canonical covers ``[-extent, extent]^2`` at
    the frames' pixel pitch (so it has ``size * extent`` px a side, rounded to a multiple of 4)."""
    if size < 8 or num_frames < 2:
        raise ValueError(f"make_clip: size={size} must be >= 8 and num_frames={num_frames} >= 2")
    if not 1.0 < extent <= 3.0:
        raise ValueError(f"make_clip: extent={extent} must be in (1, 3]")
    side = int(round(size * extent / 4)) * 4
    canonical = picture(picture_name, side)
    motion = random_motion(seed, bump=bump)
    grid = pixel_grid(size, size)
    frames = []
    for t in frame_times(num_frames).tolist():
        canon = motion.warp(t, grid)
        if canon.abs().max() > extent:
            raise ValueError("make_clip: the camera path leaves the canonical; lower the motion")
        frames.append(sample(canonical, canon, extent).T.reshape(3, size, size))
    return SyntheticClip(torch.stack(frames), canonical, extent, motion, picture_name)
