"""Scoring generated groups with the judge encoder (Sec. 4's measures in miniature).

Per box i of a canvas, the judge embeds the generated face (the box crop) and every person's
identity image: ``sim[i, j]`` = cos(judge(generated i), judge(identity j)).

- single similarity: sim[i, i], averaged over boxes (the paper's ID similarity);
- random baseline: the similarity of a generated face to a random other person's identity
  image (from another canvas): what "no identity at all" scores;
- identity-mixing rate: share of boxes whose face is closer to another person of the canvas
  than to its own (sim[i, j] > sim[i, i] for some j != i);
- MultiSim (the paper's multi-ID score): mean single similarity + (1 - mean similarity
  between the generated faces of one canvas), so copies of one face are penalised;
- text adherence: the background (pixels outside every grown box) is nearest to the prompted
  colour.
"""

from __future__ import annotations

import torch
from torch import Tensor

from paperlab.papers.instantfamily.attention import RegionMask
from paperlab.papers.instantfamily.data import COLOURS, crop_faces, nearest_colour
from paperlab.papers.instantfamily.identity import IdentityEncoder, embed


def per_box(judge: IdentityEncoder, images: Tensor, boxes: Tensor, refs: Tensor) -> dict:
    """Per-box measures of canvases ``images`` (B, 3, S, S) in [-1, 1] with ``boxes``
    (B, K, 3) and identity images ``refs`` (B, K, 3, 16, 16): tensors ``single`` (B, K),
    ``random`` (B, K), ``mixed`` (B, K) bool and ``between`` (B,) (NaN for K = 1)."""
    b, k = boxes.shape[:2]
    gen = embed(judge, crop_faces(images, boxes).flatten(0, 1)).view(b, k, -1)
    ref = embed(judge, refs.flatten(0, 1)).view(b, k, -1)
    sim = torch.einsum("bie,bje->bij", gen, ref)
    single = sim.diagonal(dim1=1, dim2=2)
    other_ref = ref.roll(1, dims=0).roll(1, dims=1)  # another canvas' person
    random = (gen * other_ref).sum(-1)
    off = ~torch.eye(k, dtype=torch.bool)
    mixed = (
        (sim.masked_fill(~off, -2).amax(-1) > single)
        if k > 1
        else torch.zeros(b, k, dtype=torch.bool)
    )
    gg = torch.einsum("bie,bje->bij", gen, gen)
    between = gg[:, off].mean(-1) if k > 1 else torch.full((b,), float("nan"))
    return {"single": single, "random": random, "mixed": mixed, "between": between}


def adherence(images: Tensor, boxes: Tensor, colour: Tensor) -> Tensor:
    """(B,) bool: the mean background colour (outside every grown box) is the prompted one."""
    size = images.shape[-1]
    owner = torch.arange(boxes.shape[1])
    inside = RegionMask(boxes, owner, size).inside(size, size).any(1)  # (B, S*S)
    pixels = ((images.flatten(2) + 1) / 2).clamp(0, 1)  # (B, 3, S*S)
    keep = (~inside).unsqueeze(1).float()
    mean = (pixels * keep).sum(-1) / keep.sum(-1).clamp(min=1)
    return nearest_colour(mean) == colour


def summarise(measures: dict, adherent: Tensor) -> dict[str, float]:
    """Means over the canvases: sim, random, mixing, multisim, adherence."""
    out = {
        "sim": float(measures["single"].mean()),
        "random": float(measures["random"].mean()),
        "mixing": float(measures["mixed"].float().mean()),
        "adherence": float(adherent.float().mean()),
    }
    if not torch.isnan(measures["between"]).all():
        out["multisim"] = out["sim"] + 1 - float(measures["between"].mean())
    return out


__all__ = ["COLOURS", "adherence", "per_box", "summarise"]
