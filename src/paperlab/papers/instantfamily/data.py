"""Procedural cartoon faces from continuous identity vectors, and group canvases.

An identity is a vector z in [0, 1]^ID_DIMS (face width and height, skin tone and tint, hair
colour and height, eye spacing and size, mouth width and height). A *render* of an identity adds
nuisance: head pose (the features shift sideways, the face moves and scales a little) and
lighting (brightness and a left-right gradient). Two renders of one identity differ only in
nuisance, so "the same person" is well defined and a face-recognition network can be trained
on them (the miniature's stand-in for a face data set).

A canvas (``size`` px, default 32) has a background colour named in the text prompt and 1-4
faces in given square boxes ``(x, y, side)`` (pixels). The face-location ("pose") image of the
control branch has one coloured disc per face centre. Boxes follow the mask rule of
:func:`check_boxes`: inside the canvas, and their regions (the box grown by ``MARGIN``) apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ID_DIMS = 10
FACE_PX = 16  # the identity image side (the encoders' input)
COLOURS = {  # the text prompt's background colours (RGB in [0, 1])
    "blue": (0.22, 0.32, 0.72),
    "green": (0.25, 0.58, 0.30),
    "purple": (0.52, 0.28, 0.60),
    "grey": (0.55, 0.55, 0.55),
}
MARGIN = 0.25  # the mask region: the box grown by 25% of its side (12.5% on each side)
POSE_COLOUR = (1.0, 0.1, 0.1)  # the face-centre disc of the control image
NEUTRAL = (0.78, 0.78, 0.78)  # the identity image's background


@dataclass
class Scene:
    """A batch of group canvases: ``images`` (B, 3, S, S) in [-1, 1], ``ids`` (B, K, ID_DIMS),
    ``boxes`` (B, K, 3) as (x, y, side) pixels, ``colour`` (B,) background ids, ``control``
    (B, 3, S, S) the face-location image in [0, 1]."""

    images: Tensor
    ids: Tensor
    boxes: Tensor
    colour: Tensor
    control: Tensor


def random_identities(n: int, generator: torch.Generator) -> Tensor:
    """``n`` identity vectors, uniform in [0, 1]^ID_DIMS."""
    return torch.rand(n, ID_DIMS, generator=generator)


def _soft(d: Tensor, px: float) -> Tensor:
    """A soft inside test: d < 0 inside; under a pixel of anti-aliasing."""
    return torch.sigmoid(-d / (0.3 * px))


def render_faces(
    ids: Tensor, size: int, generator: torch.Generator, *, nuisance: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Faces of identities ``ids`` (N, ID_DIMS) as (rgb (N, 3, size, size) in [0, 1], alpha
    (N, 1, size, size)); ``nuisance`` scales the random pose and lighting (0 = frontal)."""
    n = ids.shape[0]
    z = ids.clamp(0, 1)
    r = (torch.rand(n, 6, generator=generator) * 2 - 1) * nuisance
    yaw, dx, dy, scale, bright, grad = (r[:, i] for i in range(6))
    lin = (torch.arange(size) + 0.5) / size * 2 - 1
    v, u = torch.meshgrid(lin, lin, indexing="ij")
    u, v = u.expand(n, -1, -1), v.expand(n, -1, -1)
    px = 2.0 / size

    def col(x: Tensor) -> Tensor:
        return x.view(n, 1, 1)

    s = col(1 + 0.06 * scale)
    uu, vv = (u - col(0.06 * dx)) / s, (v - col(0.06 * dy)) / s
    rx, ry = col(0.55 + 0.3 * z[:, 0]), col(0.68 + 0.24 * z[:, 1])
    face = _soft(torch.sqrt((uu / rx) ** 2 + (vv / ry) ** 2) - 1, px / rx)
    head = _soft(torch.sqrt((uu / (rx + 0.1)) ** 2 + ((vv + 0.05) / (ry + 0.08)) ** 2) - 1, px)
    hair_line = -ry + col(0.25 + 0.55 * z[:, 5]) * ry
    hair = head * _soft(vv - hair_line, px) * (1 - face * _soft(hair_line - vv, px))
    hair = torch.maximum(hair, head * _soft(vv - hair_line, px))
    shift = col(0.12 * yaw)  # head pose: the features slide sideways
    spacing, eye_r = col(0.18 + 0.22 * z[:, 6]), col(0.08 + 0.08 * z[:, 7])
    eye_y = -0.08
    eyes = torch.maximum(
        _soft(torch.sqrt((uu - shift - spacing) ** 2 + (vv - eye_y) ** 2) - eye_r, px),
        _soft(torch.sqrt((uu - shift + spacing) ** 2 + (vv - eye_y) ** 2) - eye_r, px),
    )
    mouth_w, mouth_y = col(0.12 + 0.3 * z[:, 8]), col(0.3 + 0.25 * z[:, 9])
    mouth = _soft(torch.maximum((uu - shift).abs() - mouth_w, (vv - mouth_y).abs() - 0.07), px)
    light = s.new_ones(n, 1, 1) * col(1 + 0.15 * bright) + col(0.12 * grad) * u

    tone, tint, hue = z[:, 2], z[:, 3], z[:, 4]
    skin = torch.stack(
        [0.95 - 0.5 * tone, 0.78 - 0.5 * tone + 0.08 * tint, 0.62 - 0.45 * tone - 0.1 * tint], 1
    )
    hair_rgb = _hue_rgb(hue, 0.35 + 0.3 * tint)
    rgb = skin.view(n, 3, 1, 1) * face.unsqueeze(1)
    rgb = rgb * (1 - hair.unsqueeze(1)) + hair_rgb.view(n, 3, 1, 1) * hair.unsqueeze(1)
    dark = torch.tensor([0.08, 0.06, 0.1]).view(1, 3, 1, 1)
    rgb = rgb * (1 - eyes.unsqueeze(1)) + dark * eyes.unsqueeze(1)
    lips = torch.tensor([0.55, 0.1, 0.15]).view(1, 3, 1, 1)
    rgb = rgb * (1 - mouth.unsqueeze(1)) + lips * mouth.unsqueeze(1)
    alpha = torch.maximum(face, hair).unsqueeze(1)
    rgb = (rgb * light.unsqueeze(1)).clamp(0, 1)
    return rgb, alpha


def _hue_rgb(hue: Tensor, value: Tensor) -> Tensor:
    """A saturated colour of hue ``hue`` in [0, 1] at brightness ``value``, (N, 3)."""
    k = torch.stack([hue * 6 + o for o in (5.0, 3.0, 1.0)], 1) % 6
    c = 1 - torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return value.unsqueeze(1) * (0.25 + 0.75 * c)


def id_images(ids: Tensor, generator: torch.Generator, *, nuisance: float = 1.0) -> Tensor:
    """Identity images (N, 3, FACE_PX, FACE_PX) in [0, 1]: one render on a neutral background."""
    rgb, alpha = render_faces(ids, FACE_PX, generator, nuisance=nuisance)
    bg = torch.tensor(NEUTRAL).view(1, 3, 1, 1)
    return rgb * alpha + bg * (1 - alpha)


def face_crops(
    ids: Tensor, generator: torch.Generator, *, sides: tuple[int, int] = (11, 16)
) -> Tensor:
    """Faces as the encoders see them at test time: rendered at a random side in ``sides`` on
    the neutral or a text background colour, resized to FACE_PX; (N, 3, FACE_PX, FACE_PX)."""
    import torch.nn.functional as F

    n = ids.shape[0]
    palette = torch.tensor([NEUTRAL, *COLOURS.values()])
    bg = palette[torch.randint(len(palette), (n,), generator=generator)].view(n, 3, 1, 1)
    out = torch.empty(n, 3, FACE_PX, FACE_PX)
    side = torch.randint(sides[0], sides[1] + 1, (n,), generator=generator)
    for s in side.unique().tolist():
        idx = (side == s).nonzero().squeeze(1)
        rgb, alpha = render_faces(ids[idx], s, generator)
        img = rgb * alpha + bg[idx] * (1 - alpha)
        out[idx] = F.interpolate(img, size=(FACE_PX, FACE_PX), mode="bilinear", antialias=True)
    return out.clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# Boxes and the margin rule


def region(box: Tensor | tuple[float, float, float]) -> tuple[float, float, float, float]:
    """The mask region of a box ``(x, y, side)``: the box grown by ``MARGIN`` (x0, y0, x1, y1)."""
    x, y, s = (float(v) for v in box)
    pad = MARGIN * s / 2
    return x - pad, y - pad, x + s + pad, y + s + pad


def check_boxes(boxes: Tensor, size: int, *, arg: str = "boxes") -> None:
    """Raise ``ValueError`` (naming ``arg``) unless every box ``(x, y, side)`` lies inside the
    ``size`` px canvas with a side of at least 4 px, and no two boxes' regions (grown by
    ``MARGIN``) overlap: a pixel may belong to one person's identity tokens only."""
    if boxes.dim() != 2 or boxes.shape[1] != 3 or boxes.shape[0] < 1:
        raise ValueError(f"{arg}: want K >= 1 boxes (x, y, side), got shape {tuple(boxes.shape)}")
    for i, (x, y, s) in enumerate(boxes.tolist()):
        if s < 4 or x < 0 or y < 0 or x + s > size or y + s > size:
            raise ValueError(
                f"{arg}: box {i} ({x:g}, {y:g}, {s:g}) is not inside the {size} px canvas"
            )
    regions = [region(b) for b in boxes.tolist()]
    for i in range(len(regions)):
        for j in range(i):
            a, b = regions[i], regions[j]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                raise ValueError(
                    f"{arg}: boxes {j} and {i} overlap once grown by the {MARGIN:.0%} mask margin"
                )


def random_boxes(
    n: int, k: int, size: int, generator: torch.Generator, *, sides: tuple[int, int]
) -> Tensor:
    """(n, k, 3) random boxes that pass :func:`check_boxes` (rejection sampling)."""
    out = torch.zeros(n, k, 3)
    for b in range(n):
        for _ in range(1000):
            s = torch.randint(sides[0], sides[1] + 1, (k,), generator=generator).float()
            xy = torch.rand(k, 2, generator=generator) * (size - s).unsqueeze(1)
            boxes = torch.cat([xy.floor(), s.unsqueeze(1)], 1)
            try:
                check_boxes(boxes, size)
            except ValueError:
                continue
            out[b] = boxes
            break
        else:
            raise ValueError(f"sides={sides}: cannot place {k} boxes on a {size} px canvas")
    return out


def grid_boxes(k: int, size: int = 32) -> Tensor:
    """A fixed layout of ``k`` (1-4) boxes: a row for k <= 2, a 2x2 grid for 3-4."""
    if not 1 <= k <= 4:
        raise ValueError(f"k={k}: the fixed layouts hold 1-4 people")
    side = round(size * 0.375)  # 12 px on 32 px
    lo, hi = round(size * 0.0625), round(size * 0.5625)
    mid = (size - side) // 2
    rows = {1: [(mid, mid)], 2: [(lo, mid), (hi, mid)]}
    corners = [(lo, lo), (hi, lo), (lo, hi), (hi, hi)]
    return torch.tensor([(x, y, side) for x, y in rows.get(k, corners[:k])], dtype=torch.float)


# ---------------------------------------------------------------------------------------------
# Canvases


def pose_image(boxes: Tensor, size: int) -> Tensor:
    """The control image (B, 3, size, size) in [0, 1]: a disc at each face centre (radius a
    quarter of the box side) on black; (B, K, 3) boxes."""
    lin = torch.arange(size) + 0.5
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    cx = boxes[..., 0] + boxes[..., 2] / 2
    cy = boxes[..., 1] + boxes[..., 2] / 2
    d = torch.sqrt((xx - cx[..., None, None]) ** 2 + (yy - cy[..., None, None]) ** 2)
    disc = (d <= boxes[..., 2, None, None] / 4).float().amax(1)  # (B, S, S)
    return disc.unsqueeze(1) * torch.tensor(POSE_COLOUR).view(1, 3, 1, 1)


def compose(
    ids: Tensor,
    boxes: Tensor,
    colour: Tensor,
    size: int,
    generator: torch.Generator,
    *,
    nuisance: float = 1.0,
) -> Tensor:
    """Canvases (B, 3, size, size) in [0, 1]: background ``colour`` ids (B,), face of ``ids``
    (B, K, ID_DIMS) rendered into each box of ``boxes`` (B, K, 3)."""
    palette = torch.tensor(list(COLOURS.values()))
    bsz, k = boxes.shape[:2]
    canvas = palette[colour].view(bsz, 3, 1, 1).expand(bsz, 3, size, size).clone()
    flat_ids, sides = ids.reshape(bsz * k, -1), boxes[..., 2].reshape(-1).long()
    for s in sides.unique().tolist():  # one render call per face size
        idx = (sides == s).nonzero().squeeze(1)
        rgb, alpha = render_faces(flat_ids[idx], s, generator, nuisance=nuisance)
        for j, flat in enumerate(idx.tolist()):
            b, i = divmod(flat, k)
            x, y = int(boxes[b, i, 0]), int(boxes[b, i, 1])
            patch = canvas[b, :, y : y + s, x : x + s]
            canvas[b, :, y : y + s, x : x + s] = rgb[j] * alpha[j] + patch * (1 - alpha[j])
    return canvas


def make_scene(
    n: int,
    k: int,
    generator: torch.Generator,
    *,
    size: int = 32,
    sides: tuple[int, int] | None = None,
    ids: Tensor | None = None,
    boxes: Tensor | None = None,
    colour: Tensor | None = None,
) -> Scene:
    """``n`` canvases with ``k`` people each (random identities, boxes and colours unless given;
    box sides in ``sides``, default 11-15 px on 32 px, scaled with ``size``)."""
    sides = sides or (round(size * 11 / 32), round(size * 15 / 32))
    ids = random_identities(n * k, generator).view(n, k, ID_DIMS) if ids is None else ids
    boxes = random_boxes(n, k, size, generator, sides=sides) if boxes is None else boxes
    if colour is None:
        colour = torch.randint(len(COLOURS), (n,), generator=generator)
    images = compose(ids, boxes, colour, size, generator)
    return Scene(images * 2 - 1, ids, boxes, colour, pose_image(boxes, size))


def crop_faces(images: Tensor, boxes: Tensor, out: int = FACE_PX) -> Tensor:
    """The box crops of canvases in [-1, 1], resized to ``out`` px and mapped to [0, 1]:
    (B, K, 3, out, out)."""
    import torch.nn.functional as F

    crops = []
    for b in range(boxes.shape[0]):
        for x, y, s in boxes[b].tolist():
            x, y, s = int(x), int(y), int(s)
            patch = images[b : b + 1, :, y : y + s, x : x + s]
            crops.append(F.interpolate(patch, size=(out, out), mode="bilinear", antialias=True))
    crops = torch.cat(crops).view(*boxes.shape[:2], 3, out, out)
    return ((crops + 1) / 2).clamp(0, 1)


def nearest_colour(colour_rgb: Tensor) -> Tensor:
    """The nearest text colour id of each RGB row (N, 3) in [0, 1]."""
    palette = torch.tensor(list(COLOURS.values()))
    return torch.cdist(colour_rgb, palette).argmin(1)


__all__ = [
    "COLOURS",
    "FACE_PX",
    "ID_DIMS",
    "MARGIN",
    "Scene",
    "check_boxes",
    "compose",
    "crop_faces",
    "grid_boxes",
    "face_crops",
    "id_images",
    "make_scene",
    "nearest_colour",
    "pose_image",
    "random_boxes",
    "random_identities",
    "region",
    "render_faces",
]
