"""The miniature's world: procedural images and clips with questions whose answers are known.

Images (the image-LLM's training data, LLaVA's role): one coloured shape on a dark background,
asked for its colour, its shape, its quadrant, or a caption ("a red circle at the top left").

Clips (the video instruction data, VideoChat2's role in the paper): ``raw_frames`` frames in
which one of three things happens, each with its question:

- motion: a shape crosses the frame; "which way?" -> "left";
- order: one shape, then another of a different colour; "first colour?" -> "red";
- count: a shape flashes 1-3 times (bursts of 3 frames); "how many flashes?" -> "two".

Motion clips also carry a caption ("describe the video." -> "a red circle moves left"), the
miniature's VideoChatGPT-bench: a score per fact (colour, shape, direction) and a length.
:func:`sample_frame_indices` is the official segment sampling (random in training, the middle
of each segment at evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

COLOURS = {
    "red": (0.95, 0.15, 0.1),
    "green": (0.15, 0.85, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.9, 0.1),
}
SHAPES = ("circle", "square", "triangle")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
DIRECTIONS = ("left", "right", "up", "down")
COUNTS = ("one", "two", "three")
TASKS = ("motion", "order", "count")

IMAGE_PROMPTS = {
    "colour": "colour?",
    "shape": "shape?",
    "where": "where?",
    "caption": "describe the image.",
}
VIDEO_PROMPTS = {
    "motion": "which way?",
    "order": "first colour?",
    "count": "how many flashes?",
    "caption": "describe the video.",
}
CHANCE = {  # uniform guessing among the answers a question admits
    "colour": 1 / len(COLOURS),
    "shape": 1 / len(SHAPES),
    "where": 1 / len(QUADRANTS),
    "motion": 1 / len(DIRECTIONS),
    "order": 1 / 2,  # one of the two colours shown
    "count": 1 / len(COUNTS),
}
_RADIUS = (
    0.28  # the shape's half-size, as a share of the frame side (smaller: 150 steps learn no colour)
)


def _inside(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Points (x, y) in the shape's unit frame (y down) that fall inside it."""
    if shape == "circle":
        return x * x + y * y <= 1.0
    if shape == "square":
        return (np.abs(x) <= 0.85) & (np.abs(y) <= 0.85)
    return (y <= 0.8) & (np.abs(x) <= (y + 1.0) / 1.8)  # triangle, apex up


def draw(canvas: np.ndarray, shape: str, colour: str, cx: float, cy: float) -> None:
    """Paint a shape centred at (cx, cy) pixels into ``canvas`` (3, S, S), 2x2 supersampled."""
    size = canvas.shape[-1]
    r = _RADIUS * size
    sub = (np.arange(2 * size) + 0.5) / 2.0  # sub-pixel centres
    x = (sub[None, :] - cx) / r
    y = (sub[:, None] - cy) / r
    cover = _inside(shape, x, y).astype(np.float32).reshape(size, 2, size, 2).mean((1, 3))
    rgb = np.asarray(COLOURS[colour], dtype=np.float32)[:, None, None]
    canvas *= 1.0 - cover
    canvas += cover * rgb


def _background(rng: np.random.Generator, size: int, frames: int = 1) -> np.ndarray:
    tint = rng.uniform(0.0, 0.12, size=(1, 3, 1, 1)).astype(np.float32)
    return np.broadcast_to(tint, (frames, 3, size, size)).copy()


def _finish(x: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    x += noise * rng.standard_normal(size=x.shape).astype(np.float32)
    return np.clip(x, 0.0, 1.0)


@dataclass
class ImageSet:
    images: Tensor  # (N, 3, S, S)
    colour: list[str]
    shape: list[str]
    where: list[str]

    def answer(self, k: int, question: str) -> str:
        if question == "caption":
            return f"a {self.colour[k]} {self.shape[k]} at the {self.where[k]}"
        return getattr(self, question)[k]


def make_images(n: int, *, size: int = 16, seed: int = 0, noise: float = 0.03) -> ImageSet:
    """``n`` single-shape images with their colour, shape and quadrant."""
    if n < 1 or size < 8:
        raise ValueError(f"make_images: need n >= 1 and size >= 8, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), dtype=np.float32)
    colours, shapes, wheres = [], [], []
    r, half = _RADIUS * size, size / 2
    for k in range(n):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        q = int(rng.integers(len(QUADRANTS)))
        # the centre well inside its quadrant (>= 1 px from the midlines)
        cx = rng.uniform(r + 0.5, half - 1.0) + (half if q % 2 else 0.0)
        cy = rng.uniform(r + 0.5, half - 1.0) + (half if q >= 2 else 0.0)
        canvas = _background(rng, size)[0]
        draw(canvas, str(shape), str(colour), cx, cy)
        out[k] = canvas
        colours.append(str(colour))
        shapes.append(str(shape))
        wheres.append(QUADRANTS[q])
    return ImageSet(torch.from_numpy(_finish(out, rng, noise)), colours, shapes, wheres)


def image_examples(images: ImageSet) -> list[tuple[Tensor, str, str]]:
    """Every image with each of its four questions: (image, prompt, answer)."""
    return [
        (images.images[k], prompt, images.answer(k, q))
        for k in range(len(images.colour))
        for q, prompt in IMAGE_PROMPTS.items()
    ]


@dataclass
class ClipSet:
    frames: Tensor  # (N, raw_frames, 3, S, S)
    task: list[str]  # "motion" | "order" | "count"
    answer: list[str]  # the answer to the task's question
    caption: list[str]  # the video's caption ("" if the clip has none: order, count)

    def __len__(self) -> int:
        return len(self.task)


def _motion(rng, canvas, size: int, raw: int) -> tuple[str, str]:
    colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
    d = DIRECTIONS[int(rng.integers(4))]
    r = _RADIUS * size
    lo, hi = r + 0.5, size - r - 0.5
    across = rng.uniform(lo, hi)
    for t in range(raw):
        s = lo + (hi - lo) * t / (raw - 1)  # from one edge to the other
        along = s if d in ("right", "down") else lo + hi - s
        cx, cy = (along, across) if d in ("left", "right") else (across, along)
        draw(canvas[t], shape, colour, cx, cy)
    return d, f"a {colour} {shape} moves {d}"


def _order(rng, canvas, size: int, raw: int) -> str:
    first, second = rng.choice(list(COLOURS), size=2, replace=False)
    r = _RADIUS * size
    for colour, frames in ((first, range(raw // 2)), (second, range(raw // 2, raw))):
        shape = str(rng.choice(SHAPES))
        cx, cy = rng.uniform(r + 0.5, size - r - 0.5, size=2)
        for t in frames:
            draw(canvas[t], shape, str(colour), cx, cy)
    return str(first)


def _count(rng, canvas, size: int, raw: int) -> str:
    k = int(rng.integers(1, 4))
    colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
    r = _RADIUS * size
    cx, cy = rng.uniform(r + 0.5, size - r - 0.5, size=2)
    burst = 3  # >= one segment of the 2x frame sampling, so every burst is seen
    gaps = [0] + [3] * (k - 1) + [0]  # >= 3 dark frames between bursts, so they stay apart
    spare = raw - k * burst - sum(gaps)
    for _ in range(max(spare, 0)):  # spread the spare frames over the gaps at random
        gaps[int(rng.integers(k + 1))] += 1
    t = gaps[0]
    for b in range(k):
        for dt in range(burst):
            draw(canvas[t + dt], shape, colour, cx, cy)
        t += burst + gaps[b + 1]
    return COUNTS[k - 1]


def make_clips(
    n: int,
    *,
    raw_frames: int = 16,
    size: int = 16,
    seed: int = 0,
    noise: float = 0.03,
    tasks: tuple[str, ...] = TASKS,
) -> ClipSet:
    """``n`` clips, the tasks in turn (balanced), each (raw_frames, 3, size, size)."""
    if n < 1 or size < 8:
        raise ValueError(f"make_clips: need n >= 1 and size >= 8, got n={n}, size={size}")
    if raw_frames < 15:
        raise ValueError(f"make_clips: raw_frames must be >= 15 (3 bursts), got {raw_frames}")
    unknown = set(tasks) - set(TASKS)
    if not tasks or unknown:
        raise ValueError(f"make_clips: tasks must be among {TASKS}, got {tasks}")
    rng = np.random.default_rng(seed)
    out = np.empty((n, raw_frames, 3, size, size), dtype=np.float32)
    task, answer, caption = [], [], []
    for k in range(n):
        kind = tasks[k % len(tasks)]
        canvas = _background(rng, size, raw_frames)
        cap = ""
        if kind == "motion":
            a, cap = _motion(rng, canvas, size, raw_frames)
        elif kind == "order":
            a = _order(rng, canvas, size, raw_frames)
        else:
            a = _count(rng, canvas, size, raw_frames)
        out[k] = canvas
        task.append(kind)
        answer.append(a)
        caption.append(cap)
    return ClipSet(torch.from_numpy(_finish(out, rng, noise)), task, answer, caption)


def sample_frame_indices(
    raw_frames: int,
    num_frames: int,
    *,
    mode: str = "middle",
    rng: np.random.Generator | None = None,
) -> list[int]:
    """The official segment sampling: split [0, raw_frames) into ``num_frames`` equal segments
    and take one frame from each, at random ("rand", training) or the middle ("middle", test)."""
    if not 1 <= num_frames <= raw_frames:
        raise ValueError(f"num_frames={num_frames} must be in 1..raw_frames={raw_frames}")
    edges = np.linspace(0, raw_frames, num_frames + 1).astype(int)
    if mode == "middle":
        return [int((a + b) // 2) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    if mode == "rand":
        rng = rng or np.random.default_rng()
        return [
            int(rng.integers(a, max(b, a + 1))) for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    raise ValueError(f"mode={mode!r}: choose 'rand' or 'middle'")


def caption_score(caption: str, reference: str) -> float:
    """Share of the reference's facts (colour, shape, direction) that the caption names
    (VideoChatGPT-bench's correctness, as exact word matches)."""
    words = set(caption.lower().replace(",", " ").split())
    facts = [w for w in reference.split() if w in COLOURS or w in SHAPES or w in DIRECTIONS]
    if not facts:
        raise ValueError(f"caption_score: the reference {reference!r} names no fact")
    return sum(f in words for f in facts) / len(facts)
