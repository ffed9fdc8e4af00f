"""Procedural multi-object scenes with exact structure, and their captions.

A scene is a 32 x 32 image cut into four cells (top left, top right, bottom left, bottom right);
2-4 of them hold one object: a colour (red, green, blue, yellow), a shape (circle, square,
triangle, cross) and a size. Exactly one object is large: the scene's subject, the thing a web
page's alt-text names. Three caption kinds:

- ``web_caption``: the short, noisy "original" caption of the paper's DataComp pairs: the
  subject's colour and shape in one of a few alt-text templates ("red circle", "photo of a red
  circle", ...); a share ``mismatch`` of them describes another scene's subject (the noise).
- ``long_caption``: every object with its size, colour, shape and cell, subject first: what
  the paper's LLaVA-1.5-LLaMA-3 recaptioner writes (the truth here, for the captioner's
  training subset and for the long retrieval queries).
- ``short_query``: the subject's clean short caption "a red circle" (retrieval with short
  queries and zero-shot prompts "{colour} {shape}").

``parse_caption`` reads a long caption back into objects, so a recaption is scored against the
scene's truth (the captioner's accuracy, the miniature's powering figure).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from paperlab.core.data.images import SHAPES, render_coverage

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.92, 0.18, 0.16),
    "green": (0.20, 0.85, 0.25),
    "blue": (0.22, 0.38, 0.98),
    "yellow": (0.95, 0.85, 0.15),
}
CELLS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right")
SIZES: tuple[str, ...] = ("small", "large")
IMAGE_SIZE = 32
WEB_TEMPLATES: tuple[str, ...] = (
    "{colour} {shape}",
    "a {colour} {shape}",
    "photo of a {colour} {shape}",
    "{shape}, {colour}",
    "the {colour} {shape}",
)
CLASS_NAMES: tuple[str, ...] = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)
# the longest long caption: four of the longest object phrases and three "; "
MAX_CAPTION_BYTES = 4 * len("small yellow triangle bottom right") + 3 * 2
_RADIUS = {"small": (2.4, 3.2), "large": (5.0, 6.0)}  # shape half-size in pixels
_EXTENT = {"circle": 1.0, "square": 1.0, "triangle": 1.25, "cross": 1.05}


@dataclass(frozen=True)
class SceneObject:
    colour: str
    shape: str
    size: str  # "small" or "large"
    cell: int  # index into CELLS

    def describe(self) -> str:
        return f"{self.size} {self.colour} {self.shape} {CELLS[self.cell]}"


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]  # in cell order

    @property
    def subject(self) -> SceneObject:
        return next(o for o in self.objects if o.size == "large")

    @property
    def label(self) -> int:
        """The subject's class index in ``CLASS_NAMES``."""
        return CLASS_NAMES.index(f"{self.subject.colour} {self.subject.shape}")


def sample_scenes(n: int, *, seed: int = 0) -> list[Scene]:
    """``n`` random scenes: 2-4 occupied cells, one large subject, the rest small."""
    if n < 1:
        raise ValueError(f"sample_scenes: n={n} must be >= 1")
    rng = random.Random(seed)
    scenes = []
    for _ in range(n):
        cells = sorted(rng.sample(range(4), rng.randint(2, 4)))
        big = rng.choice(cells)
        objects = tuple(
            SceneObject(
                colour=rng.choice(tuple(COLOURS)),
                shape=rng.choice(SHAPES),
                size="large" if c == big else "small",
                cell=c,
            )
            for c in cells
        )
        scenes.append(Scene(objects))
    return scenes


def render_scenes(scenes: Sequence[Scene], *, seed: int = 0, noise: float = 0.03) -> torch.Tensor:
    """(N, 3, 32, 32) float32 in [0, 1]: a dark tinted background, each object anti-aliased
    at a random spot of its cell (``core.data.images.render_coverage``), pixel noise."""
    rng = np.random.default_rng(seed)
    n, s, half = len(scenes), IMAGE_SIZE, IMAGE_SIZE // 2
    images = np.broadcast_to(rng.uniform(0.0, 0.12, size=(n, 3, 1, 1)), (n, 3, s, s)).copy()
    objects = [(i, o) for i, scene in enumerate(scenes) for o in scene.objects]
    m = len(objects)
    r = np.array([rng.uniform(*_RADIUS[o.size]) for _, o in objects])
    reach = np.minimum(r * np.array([_EXTENT[o.shape] for _, o in objects]), half / 2 - 0.5)
    row, col = np.array([divmod(o.cell, 2) for _, o in objects]).reshape(m, 2).T
    cx = reach + rng.uniform(size=m) * (half - 2 * reach)  # in the cell's own frame
    cy = reach + rng.uniform(size=m) * (half - 2 * reach)
    base = np.array([COLOURS[o.colour] for _, o in objects]).reshape(m, 3)
    colour = np.clip(base + rng.uniform(-0.08, 0.08, size=(m, 3)), 0, 1)
    coverage = np.zeros((m, half, half), dtype=np.float32)
    for shape in SHAPES:  # one batched render per shape kind, each object in its cell
        sel = np.flatnonzero([o.shape == shape for _, o in objects])
        if len(sel):
            coverage[sel] = render_coverage(
                shape, cx[sel], cy[sel], r[sel], np.zeros(len(sel)), size=half
            )
    for k, (i, _) in enumerate(objects):  # objects sit in distinct cells: no overlap
        cell = images[
            i, :, row[k] * half : (row[k] + 1) * half, col[k] * half : (col[k] + 1) * half
        ]
        cov = coverage[k]
        cell[:] = cov * colour[k][:, None, None] + (1 - cov) * cell
    if noise > 0:
        images += noise * rng.standard_normal(size=images.shape)
    return torch.from_numpy(np.clip(images, 0.0, 1.0).astype(np.float32))


# ---------------------------------------------------------------------------------------------
# Captions


def long_caption(scene: Scene) -> str:
    """Every object, the subject first (as a detailed caption opens with the main subject),
    then the others in reading order: "large red circle top left; small blue cross top right"."""
    rest = [o for o in scene.objects if o is not scene.subject]
    return "; ".join(o.describe() for o in (scene.subject, *rest))


def short_query(scene: Scene) -> str:
    return f"a {scene.subject.colour} {scene.subject.shape}"


def web_captions(scenes: Sequence[Scene], *, mismatch: float, seed: int = 0) -> list[str]:
    """The noisy alt-texts: the subject in a random template; a share ``mismatch`` of them
    names the subject of another random scene instead (mismatched image-text pairs)."""
    if not 0.0 <= mismatch <= 1.0:
        raise ValueError(f"web_captions: mismatch={mismatch} must be in [0, 1]")
    rng = random.Random(seed)
    out = []
    for scene in scenes:
        subject = scene.subject
        if rng.random() < mismatch:
            subject = scenes[rng.randrange(len(scenes))].subject
        template = rng.choice(WEB_TEMPLATES)
        out.append(template.format(colour=subject.colour, shape=subject.shape))
    return out


_OBJECT = re.compile(
    rf"({'|'.join(SIZES)}) ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)}) ({'|'.join(CELLS)})"
)


def parse_caption(text: str) -> set[SceneObject]:
    """The objects a long caption states (well-formed phrases only; the rest is ignored)."""
    return {
        SceneObject(colour=c, shape=s, size=z, cell=CELLS.index(p))
        for z, c, s, p in _OBJECT.findall(text)
    }


def caption_scores(scenes: Sequence[Scene], captions: Sequence[str]) -> dict[str, float]:
    """How well captions state their scenes: object precision, recall and F1 (an object counts
    when size, colour, shape and cell are all right), exact-caption rate, and the subject's
    colour+shape named correctly (as the web captions try to)."""
    if len(scenes) != len(captions):
        raise ValueError(f"caption_scores: {len(scenes)} scenes, {len(captions)} captions")
    tp = stated = true = exact = subject = 0
    for scene, caption in zip(scenes, captions, strict=True):
        said, truth = parse_caption(caption), set(scene.objects)
        tp += len(said & truth)
        stated += len(said)
        true += len(truth)
        exact += caption.strip() == long_caption(scene)
        subject += any(
            o.size == "large" and (o.colour, o.shape) == (scene.subject.colour, scene.subject.shape)
            for o in said
        )
    precision, recall = tp / max(stated, 1), tp / max(true, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    n = max(len(scenes), 1)
    return {
        "object_precision": precision,
        "object_recall": recall,
        "object_f1": f1,
        "exact": exact / n,
        "subject_acc": subject / n,
    }


def web_caption_accuracy(scenes: Sequence[Scene], captions: Sequence[str]) -> float:
    """Share of web captions that name their own scene's subject (1 - the mismatch noise)."""
    ok = sum(
        s.subject.colour in c and s.subject.shape in c
        for s, c in zip(scenes, captions, strict=True)
    )
    return ok / max(len(scenes), 1)
