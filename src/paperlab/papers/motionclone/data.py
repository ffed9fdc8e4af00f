"""Procedural clips: one coloured shape moving on a linear, circular or zig-zag path.

Clips are float tensors (N, 3, F, H, W) in [-1, 1] on a black background; the prompt of a clip
is "{colour} {shape}" (token ids (colour, shape)); the exact centre of the shape in every frame
is kept, so a generated clip's trajectory can be compared with its reference's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, -1.0, -1.0),
    "green": (-1.0, 1.0, -1.0),
    "blue": (-1.0, -1.0, 1.0),
    "yellow": (1.0, 1.0, -1.0),
}
SHAPES = ("square", "plus", "bar")
PATHS = ("linear", "circular", "zigzag")


def shape_mask(shape: str) -> np.ndarray:
    """The shape's pixels, centred in a 7x7 box: a 5x5 square, a plus of 3-px-wide arms, a
    horizontal 3x7 bar."""
    m = np.zeros((7, 7), dtype=bool)
    if shape == "square":
        m[1:6, 1:6] = True
    elif shape == "plus":
        m[2:5, 0:7] = True
        m[0:7, 2:5] = True
        m[0, 0:2] = m[0, 5:] = False
    elif shape == "bar":
        m[2:5, 0:7] = True
    else:
        raise ValueError(f"shape={shape!r}: choose one of {SHAPES}")
    return m


def path(kind: str, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, 2) centres (row, col) in pixels, kept 3.5 px inside the canvas (the speeds fit
    8 frames on 16 px; larger canvases leave more room)."""
    lo, hi = 3.5, size - 4.5
    if kind == "linear":
        speed = rng.uniform(0.6, 1.0)
        angle = rng.uniform(0, 2 * math.pi)
        v = speed * np.array([math.sin(angle), math.cos(angle)])
        span = v * (frames - 1)
        start = np.array([rng.uniform(lo - min(span[i], 0), hi - max(span[i], 0)) for i in (0, 1)])
        return start + np.arange(frames)[:, None] * v
    if kind == "circular":
        radius = rng.uniform(2.5, (hi - lo) / 2)
        centre = rng.uniform(lo + radius, hi - radius, size=2)
        phase, omega = rng.uniform(0, 2 * math.pi), rng.choice([-1, 1]) * rng.uniform(0.6, 0.9)
        a = phase + omega * np.arange(frames)
        return centre + radius * np.stack([np.sin(a), np.cos(a)], axis=1)
    if kind == "zigzag":
        vx = rng.choice([-1, 1]) * rng.uniform(0.6, 1.0)
        amp = rng.uniform(1.5, 2.5)
        cols = np.arange(frames) * vx
        rows = amp * np.where(np.arange(frames) % 4 < 2, 1.0, -1.0)
        rows = np.convolve(np.pad(rows, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
        start_c = rng.uniform(lo - min(cols.min(), 0), hi - max(cols.max(), 0))
        start_r = rng.uniform(lo + amp, hi - amp)
        return np.stack([start_r + rows, start_c + cols], axis=1)
    raise ValueError(f"kind={kind!r}: choose one of {PATHS}")


def render(colour: str, shape: str, centres: np.ndarray, size: int) -> np.ndarray:
    """(3, F, size, size) in [-1, 1]: the shape at the rounded centre of each frame."""
    frames = np.full((3, len(centres), size, size), -1.0, dtype=np.float32)
    mask, rgb = shape_mask(shape), np.array(COLOURS[colour], dtype=np.float32)
    for f, (r, c) in enumerate(centres):
        r0, c0 = int(round(r)) - 3, int(round(c)) - 3
        for dr, dc in zip(*np.nonzero(mask), strict=True):
            rr, cc = r0 + dr, c0 + dc
            if 0 <= rr < size and 0 <= cc < size:
                frames[:, f, rr, cc] = rgb
    return frames


@dataclass
class ClipSet:
    clips: Tensor  # (N, 3, F, H, W) in [-1, 1]
    prompts: Tensor  # (N, 2) long: (colour id, shape id)
    paths: list[str]  # path kind per clip
    centres: Tensor  # (N, F, 2) exact centres (row, col)

    def __len__(self) -> int:
        return self.clips.shape[0]


def make_clips(n: int, *, frames: int = 8, size: int = 16, seed: int = 0) -> ClipSet:
    """``n`` clips with colours, shapes and paths drawn uniformly (seeded)."""
    if n < 1 or frames < 2 or size < 16:
        raise ValueError(
            f"n={n}, frames={frames}, size={size}: need n >= 1, frames >= 2, size >= 16"
        )
    rng = np.random.default_rng(seed)
    colours, clips, prompts, kinds, centres = list(COLOURS), [], [], [], []
    for _ in range(n):
        ci, si, kind = rng.integers(len(colours)), rng.integers(len(SHAPES)), rng.choice(PATHS)
        c = path(str(kind), frames, size, rng)
        clips.append(render(colours[ci], SHAPES[si], c, size))
        prompts.append((ci, si))
        kinds.append(str(kind))
        centres.append(c)
    return ClipSet(
        clips=torch.from_numpy(np.stack(clips)),
        prompts=torch.tensor(prompts, dtype=torch.long),
        paths=kinds,
        centres=torch.from_numpy(np.stack(centres)).float(),
    )


def parse_prompt(prompt: str) -> tuple[int, int]:
    """'{colour} {shape}' -> (colour id, shape id); the empty prompt is not a subject."""
    words = prompt.lower().split()
    if len(words) != 2 or words[0] not in COLOURS or words[1] not in SHAPES:
        raise ValueError(
            f"prompt={prompt!r}: write '<colour> <shape>' with a colour of {list(COLOURS)} "
            f"and a shape of {list(SHAPES)}"
        )
    return list(COLOURS).index(words[0]), SHAPES.index(words[1])


def centroids(clips: Tensor) -> Tensor:
    """(N, F, 2) weighted centroid (row, col) of each frame's foreground. A pixel's weight is
    how far its brightest channel rises above the frame's median (the background: black in the
    data, grey noise in an undertrained sample), minus a 0.3 margin, floored at 0; an empty
    frame's centroid is the canvas centre."""
    n, _, f, h, w = clips.shape
    value = clips.max(dim=1).values  # (N, F, H, W)
    median = value.flatten(2).median(dim=-1).values[..., None, None]
    weight = (value - median - 0.3).clamp_min(0)
    total = weight.sum(dim=(-1, -2))
    rows = torch.arange(h, dtype=clips.dtype).view(1, 1, h, 1)
    cols = torch.arange(w, dtype=clips.dtype).view(1, 1, 1, w)
    r = (weight * rows).sum(dim=(-1, -2)) / total.clamp_min(1e-6)
    c = (weight * cols).sum(dim=(-1, -2)) / total.clamp_min(1e-6)
    empty = total < 1e-3
    centre = torch.full_like(r, (h - 1) / 2)
    return torch.stack([torch.where(empty, centre, r), torch.where(empty, centre, c)], dim=-1)
