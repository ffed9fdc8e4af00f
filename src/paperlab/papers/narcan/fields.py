"""NaRCan's three fields (Sec. 3.1, Fig. 2b), as in the official code's ``models/model.py``:

- ``HomographyMLP``: t -> the 8 free entries of a 3x3 homography (ReLU MLP, its last bias
  initialised to the identity), the global motion;
- the residual deformation ``g``: a SIREN (x, y, t) -> (du, dv), the non-rigid rest;
- the canonical image ``f``: a SIREN (x', y') -> RGB.

A frame pixel is rendered as ``f(H_t(x, y) + g(x, y, t))``. :class:`NaRCan` holds the three
fields and the canonical region (the box the homographies map the frames into), and renders
frames, the canonical image and edits propagated from an edited canonical.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.papers.narcan.video import frame_times, pixel_grid


class SineLayer(nn.Module):
    """sin(omega_0 * (W x + b)) with SIREN's initialisation (Sitzmann et al. 2020, Sec. 3.2)."""

    def __init__(self, in_features: int, out_features: int, *, first: bool, omega_0: float = 30.0):
        super().__init__()
        self.omega_0 = omega_0
        self.linear = nn.Linear(in_features, out_features)
        bound = 1 / in_features if first else math.sqrt(6 / in_features) / omega_0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.omega_0 * self.linear(x))


class Siren(nn.Module):
    """A SIREN with a linear last layer (``outermost_linear=True`` in the official code)."""

    def __init__(
        self,
        *,
        in_features: int,
        out_features: int,
        hidden: int,
        layers: int,
        omega_0: float = 30.0,
    ):
        super().__init__()
        blocks: list[nn.Module] = [SineLayer(in_features, hidden, first=True, omega_0=omega_0)]
        blocks += [SineLayer(hidden, hidden, first=False, omega_0=omega_0) for _ in range(layers)]
        last = nn.Linear(hidden, out_features)
        with torch.no_grad():
            bound = math.sqrt(6 / hidden) / omega_0
            last.weight.uniform_(-bound, bound)
        self.net = nn.Sequential(*blocks, last)

    def forward(self, coords: Tensor) -> Tensor:
        return self.net(coords)


class HomographyMLP(nn.Module):
    """t (N, 1) -> 8 homography entries (N, 8); the ninth is fixed to 1. The last layer's bias
    is the identity, as in the official ``Homography`` (its weights keep torch's default
    initialisation, so H_t starts near, not at, the identity)."""

    def __init__(self, *, hidden: int = 64, layers: int = 2):
        super().__init__()
        blocks: list[nn.Module] = [nn.Linear(1, hidden), nn.ReLU()]
        for _ in range(layers):
            blocks += [nn.Linear(hidden, hidden), nn.ReLU()]
        last = nn.Linear(hidden, 8)
        with torch.no_grad():
            last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
        self.net = nn.Sequential(*blocks, last)

    def forward(self, t: Tensor) -> Tensor:
        return self.net(t)


def apply_homography(xy: Tensor, h: Tensor) -> Tensor:
    """Points (N, 2) through per-point homographies given as 8 entries (N, 8)."""
    m = torch.cat([h, torch.ones_like(h[:, :1])], dim=-1).view(-1, 3, 3)
    p = torch.cat([xy, torch.ones_like(xy[:, :1])], dim=-1).unsqueeze(-1)
    q = torch.bmm(m, p).squeeze(-1)
    return q[:, :2] / q[:, 2:]


def jacobian(y: Tensor, x: Tensor) -> Tensor:
    """d y / d x per row: (N, out, in), differentiable (``create_graph``), as the official
    ``util.jacobian`` used for the residual field's regulariser."""
    rows = []
    for i in range(y.shape[1]):
        v = torch.zeros_like(y)
        v[:, i] = 1.0
        rows.append(torch.autograd.grad(y, x, grad_outputs=v, create_graph=True)[0])
    return torch.stack(rows, dim=1)


def region_grid(region: Tensor, height: int, width: int) -> Tensor:
    """(H*W, 2) canonical points covering ``region`` = (x_min, y_min, x_max, y_max) with the
    corners included (the official ``get_mgrid`` over the canonical region)."""
    x0, y0, x1, y1 = region.tolist()
    ys, xs = torch.linspace(y0, y1, height), torch.linspace(x0, x1, width)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


class NaRCan(nn.Module):
    """The fitted representation of one clip: ``homography`` (frozen after stage 1),
    ``residual`` g (``None`` = homography-only) and ``canonical`` f; ``region`` is the box
    (x_min, y_min, x_max, y_max) the frames map into under the homographies."""

    def __init__(
        self,
        *,
        frames: int,
        height: int,
        width: int,
        canonical_size: int,
        hidden: int = 64,
        layers: int = 3,
        residual_hidden: int = 64,
        residual_layers: int = 3,
        homography_hidden: int = 64,
        residual: bool = True,
    ):
        super().__init__()
        self.config = dict(
            frames=frames,
            height=height,
            width=width,
            canonical_size=canonical_size,
            hidden=hidden,
            layers=layers,
            residual_hidden=residual_hidden,
            residual_layers=residual_layers,
            homography_hidden=homography_hidden,
            residual=residual,
        )
        self.shape = (frames, height, width)
        self.canonical_size = canonical_size
        self.homography = HomographyMLP(hidden=homography_hidden)
        self.residual = (
            Siren(in_features=3, out_features=2, hidden=residual_hidden, layers=residual_layers)
            if residual
            else None
        )
        self.canonical = Siren(in_features=2, out_features=3, hidden=hidden, layers=layers)
        self.register_buffer("region", torch.tensor([-1.0, -1.0, 1.0, 1.0]))

    def deform(self, xyt: Tensor) -> tuple[Tensor, Tensor | None]:
        """Canonical coordinates of points (N, 3) = (x, y, t), and the residual g (or None)."""
        h = apply_homography(xyt[:, :2], self.homography(xyt[:, 2:]))
        if self.residual is None:
            return h, None
        g = self.residual(xyt)
        return h + g, g

    def forward(self, xyt: Tensor) -> Tensor:
        """RGB in [-1, 1] (unclipped) of frame points (N, 3)."""
        return self.canonical(self.deform(xyt)[0])

    def frame_points(self, device: torch.device | str | None = None) -> Tensor:
        """(F*H*W, 3) all (x, y, t) of the clip, frame-major."""
        f, h, w = self.shape
        xy = pixel_grid(h, w)
        t = frame_times(f) if f > 1 else torch.zeros(1)
        pts = torch.cat([xy.repeat(f, 1), t.repeat_interleave(h * w)[:, None]], dim=-1)
        return pts.to(device or self.region.device)

    @torch.no_grad()
    def render_frames(self, chunk: int = 16384) -> Tensor:
        """The reconstructed clip (F, 3, H, W) in [-1, 1]."""
        f, h, w = self.shape
        pts = self.frame_points()
        out = torch.cat([self(p) for p in pts.split(chunk)])
        return out.clamp(-1, 1).view(f, h, w, 3).permute(0, 3, 1, 2)

    def render_canonical(self, size: int | None = None) -> Tensor:
        """The canonical image over the region (3, S, S), clipped to [-1, 1] (differentiable)."""
        # DEVIATION: a fixed S x S render of the region (official: 512 x 512)
        s = size or self.canonical_size
        grid = region_grid(self.region, s, s).to(self.region.device)
        return self.canonical(grid).clamp(-1, 1).T.reshape(3, s, s)

    @torch.no_grad()
    def canonical_coords(self, chunk: int = 16384) -> Tensor:
        """(F*H*W, 2) where each frame pixel lands in the canonical (homography + residual)."""
        pts = self.frame_points()
        return torch.cat([self.deform(p)[0] for p in pts.split(chunk)])

    @torch.no_grad()
    def propagate(self, edited: Tensor) -> Tensor:
        """Frames (F, C, H, W) of an edited canonical image (C, Hc, Wc) over the region: each
        pixel samples it where the warps send it (the official ``test_canonical.py``)."""
        f, h, w = self.shape
        x0, y0, x1, y1 = self.region.tolist()
        q = self.canonical_coords()
        lo = torch.tensor([x0, y0], device=q.device)
        hi = torch.tensor([x1, y1], device=q.device)
        grid = (2 * (q - lo) / (hi - lo) - 1).view(1, 1, -1, 2)
        out = F.grid_sample(
            edited[None].to(q), grid, mode="bilinear", padding_mode="border", align_corners=True
        )
        return out[0, :, 0].T.reshape(f, h, w, -1).permute(0, 3, 1, 2)

    @torch.no_grad()
    def set_region(self) -> Tensor:
        """The region = the bounding box of every frame pixel under the homographies alone
        (the official ``train.py`` computes it after stage 1 the same way)."""
        pts = self.frame_points()
        h = apply_homography(pts[:, :2], self.homography(pts[:, 2:]))
        box = torch.cat([h.min(0).values, h.max(0).values])
        self.region.copy_(box)
        return box
