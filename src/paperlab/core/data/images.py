"""Small labelled image sets that ship with the machine or are drawn on the spot (no downloads).

- ``make_shapes``: procedural coloured shapes (circle, square, triangle, cross) x (red, green,
  blue) = 12 classes, anti-aliased, random position / size / tint / noise, any size 8..64 px.
- ``load_digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes).

Both give an :class:`ImageDataset`: float32 ``(N, C, H, W)`` images in [0, 1] with int64 labels,
``split`` / ``subset`` and a ``batches`` function usable as the ``batches`` of
:func:`paperlab.core.train.train`. ``image_grid`` tiles images into one array for ``imshow``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from paperlab.core.errors import UserError
from paperlab.core.train import row_batches

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.92, 0.18, 0.16),
    "green": (0.20, 0.85, 0.25),
    "blue": (0.22, 0.38, 0.98),
}
DATASETS: tuple[str, ...] = ("shapes", "digits")


@dataclass(frozen=True, eq=False)  # == on tensors is ambiguous: compare the fields
class ImageDataset:
    """Labelled images: ``images`` (N, C, H, W) float32 in [0, 1], ``labels`` (N,) int64."""

    name: str  # "shapes" or "digits" (used in metric names: "FD-shapes")
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, index: torch.Tensor | slice) -> ImageDataset:
        """The images (and labels) at ``index`` (a slice, a long or a bool tensor)."""
        return ImageDataset(
            name=self.name,
            images=self.images[index],
            labels=self.labels[index],
            class_names=self.class_names,
        )

    def split(self, n_test: int, *, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """(train, test) with ``n_test`` test images, shuffled deterministically by ``seed``."""
        if not 0 < n_test < len(self):
            raise ValueError(f"split: n_test={n_test} must be in 1..{len(self) - 1}")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.subset(order[n_test:]), self.subset(order[:n_test])

    def batches(
        self, batch_size: int, *, seed: int = 0
    ) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
        """``step -> (images, labels)``: a random batch (with replacement) that depends only on
        (seed, step), so a resumed or repeated run sees the same batches."""
        return row_batches((self.images, self.labels), batch_size, seed=seed)


# ---------------------------------------------------------------------------------------------
# Procedural shapes

_SUPERSAMPLE = 4  # sub-pixels per pixel side; coverage = mean over the 4 x 4 sub-pixels
_CHUNK_PIXELS = 1 << 23  # sub-pixels rendered at once (bounds memory to ~100 MB)
# Triangle in unit coordinates (y points down): apex up, base at y = 0.75. Its vertices lie
# within radius 1.25 of the centre, so rotating it never leaves the bound used for placement.
_TRIANGLE = np.array([[0.0, -1.0], [1.0, 0.75], [-1.0, 0.75]])
_CROSS_HALF_WIDTH = 0.3  # arm half-width; arms reach +-1
# How far (in units of the shape's scale r) a shape reaches from its centre, rotation included.
_EXTENT = {"circle": 1.0, "square": 1.0, "triangle": 1.25, "cross": math.hypot(1.0, 0.3)}
_ROTATES = {"circle": False, "square": False, "triangle": True, "cross": True}
_MAX_ROTATION = math.radians(15.0)


def _inside(shape: str, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Boolean mask of points (px, py), in the shape's unit frame, that fall inside it."""
    if shape == "circle":
        return px * px + py * py <= 1.0
    if shape == "square":
        return np.maximum(np.abs(px), np.abs(py)) <= 1.0
    if shape == "cross":
        ax, ay = np.abs(px), np.abs(py)
        w = _CROSS_HALF_WIDTH
        return ((ax <= 1.0) & (ay <= w)) | ((ay <= 1.0) & (ax <= w))
    if shape == "triangle":  # inside = on the inner side of all three edges
        mask = np.ones(np.broadcast_shapes(px.shape, py.shape), dtype=bool)
        for k in range(3):
            (x0, y0), (x1, y1) = _TRIANGLE[k], _TRIANGLE[(k + 1) % 3]
            mask &= (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0) >= 0.0
        return mask
    raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")


def render_coverage(
    shape: str, cx: np.ndarray, cy: np.ndarray, r: np.ndarray, theta: np.ndarray, *, size: int
) -> np.ndarray:
    """Anti-aliased coverage (B, size, size) in [0, 1] of one shape kind for B images.

    ``cx, cy`` centre in pixels (0 = left/top edge), ``r`` scale in pixels, ``theta`` rotation
    in radians, each of shape (B,). Sub-pixel centres are tested, then averaged per pixel.
    """
    s = _SUPERSAMPLE
    u = ((np.arange(size * s) + 0.5) / s).astype(np.float32)  # sub-pixel centres
    out = np.empty((len(cx), size, size), dtype=np.float32)
    chunk = max(1, _CHUNK_PIXELS // (size * s) ** 2)
    for lo in range(0, len(cx), chunk):
        sl = slice(lo, lo + chunk)
        cos = (np.cos(theta[sl]) / r[sl]).astype(np.float32)[:, None, None]
        sin = (np.sin(theta[sl]) / r[sl]).astype(np.float32)[:, None, None]
        dx = u[None, None, :] - cx[sl].astype(np.float32)[:, None, None]  # (B, 1, S)
        dy = u[None, :, None] - cy[sl].astype(np.float32)[:, None, None]  # (B, S, 1)
        px, py = cos * dx + sin * dy, cos * dy - sin * dx  # rotate by -theta, scale by 1/r
        mask = _inside(shape, px, py)  # (B, S, S)
        b = mask.shape[0]
        out[sl] = mask.reshape(b, size, s, size, s).mean(axis=(2, 4), dtype=np.float32)
    return out


def _check_names(kind: str, names: Sequence[str], choices: Sequence[str]) -> None:
    if isinstance(names, str) or not names:
        raise ValueError(f"make_shapes: {kind} must be a non-empty list of names")
    bad = [x for x in names if x not in choices]
    if bad or len(set(names)) != len(names):
        raise ValueError(
            f"make_shapes: bad {kind} {bad or list(names)}; choose distinct names from "
            f"{', '.join(choices)}"
        )


def make_shapes(
    n: int,
    *,
    size: int = 16,
    seed: int = 0,
    shapes: Sequence[str] = SHAPES,
    colours: Sequence[str] = tuple(COLOURS),
    noise: float = 0.03,
    scale: tuple[float, float] = (0.22, 0.42),
) -> ImageDataset:
    """``n`` images (3, size, size) of coloured shapes; class = shape_index * len(colours) +
    colour_index, named like "red circle". Balanced classes, deterministic for the arguments.

    ``scale``: range of the shape's half-size r as a share of ``size`` (clipped so the shape
    stays fully inside). Colour jitter +-0.1 per channel; a dark background with a random tint;
    gaussian pixel noise of std ``noise``; clipped to [0, 1].
    """
    _check_names("shapes", shapes, SHAPES)
    _check_names("colours", colours, tuple(COLOURS))
    if n < 1 or size < 4:
        raise ValueError(f"make_shapes: need n >= 1 and size >= 4, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    n_colours = len(colours)
    num_classes = len(shapes) * n_colours
    labels = rng.permutation(np.arange(n) % num_classes)  # balanced, then shuffled
    shape_idx, colour_idx = labels // n_colours, labels % n_colours

    extent = np.array([_EXTENT[s] for s in shapes])[shape_idx]
    r = size * rng.uniform(*scale, size=n)
    r = np.minimum(r, (size / 2 - 0.5) / extent)  # keep >= half a pixel of margin
    reach = extent * r
    cx = reach + rng.uniform(size=n) * (size - 2 * reach)
    cy = reach + rng.uniform(size=n) * (size - 2 * reach)
    rotates = np.array([_ROTATES[s] for s in shapes])[shape_idx]
    theta = rng.uniform(-_MAX_ROTATION, _MAX_ROTATION, size=n) * rotates

    base = np.array([COLOURS[c] for c in colours])[colour_idx]
    colour = np.clip(base + rng.uniform(-0.1, 0.1, size=(n, 3)), 0.0, 1.0)
    background = rng.uniform(0.0, 0.12, size=(n, 3))

    coverage = np.empty((n, size, size), dtype=np.float32)
    for k, shape in enumerate(shapes):
        sel = np.flatnonzero(shape_idx == k)
        if len(sel):
            coverage[sel] = render_coverage(shape, cx[sel], cy[sel], r[sel], theta[sel], size=size)
    cov = coverage[:, None]  # (N, 1, H, W)
    images = cov * colour.astype(np.float32)[:, :, None, None]
    images += (1.0 - cov) * background.astype(np.float32)[:, :, None, None]
    if noise > 0:
        images += noise * rng.standard_normal(size=images.shape, dtype=np.float32)
    np.clip(images, 0.0, 1.0, out=images)
    class_names = tuple(f"{c} {s}" for s in shapes for c in colours)
    return ImageDataset(
        name="shapes",
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=class_names,
    )


# ---------------------------------------------------------------------------------------------
# Digits


@functools.lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load_digits  # bundled with scikit-learn

    data = sk_load_digits()
    return data.images.astype(np.float32) / 16.0, data.target.astype(np.int64)


def load_digits(*, size: int = 8) -> ImageDataset:
    """scikit-learn's 1797 handwritten 8x8 digits, 1 channel in [0, 1], bilinearly resized to
    ``size`` when size != 8."""
    if size < 4:
        raise ValueError(f"load_digits: size={size} must be >= 4")
    images, labels = _sklearn_digits()
    x = torch.from_numpy(images.copy())[:, None]  # (1797, 1, 8, 8)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = x.clamp(0.0, 1.0)
    return ImageDataset(
        name="digits",
        images=x.contiguous(),
        labels=torch.from_numpy(labels.copy()),
        class_names=tuple(str(d) for d in range(10)),
    )


def load_images(name: str, *, n: int = 4000, size: int = 16, seed: int = 0) -> ImageDataset:
    """ "shapes" -> make_shapes(n, size=size, seed=seed); "digits" -> load_digits(size=size)
    (``n`` and ``seed`` ignored: all 1797 images)."""
    if name == "shapes":
        return make_shapes(n, size=size, seed=seed)
    if name == "digits":
        return load_digits(size=size)
    raise UserError(f"unknown image dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def image_grid(
    images: torch.Tensor, *, nrow: int, pad: int = 1, pad_value: float = 1.0
) -> np.ndarray:
    """Tile (N, C, H, W) images in [0, 1], ``nrow`` per row, into an (H', W', 3) float array
    for ``ax.imshow``; 1 channel becomes grey. ``pad`` pixels of ``pad_value`` around each."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"image_grid: want (N, 1 or 3, H, W) images, got {tuple(images.shape)}")
    if nrow < 1 or pad < 0:
        raise ValueError(f"image_grid: need nrow >= 1 and pad >= 0, got {nrow}, {pad}")
    x = images.detach().float().cpu().clamp(0.0, 1.0).numpy()
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    n, _, h, w = x.shape
    cols = max(1, min(nrow, n))
    rows = max(1, math.ceil(n / cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), pad_value, np.float32)
    for i in range(n):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        grid[top : top + h, left : left + w] = x[i].transpose(1, 2, 0)
    return grid
