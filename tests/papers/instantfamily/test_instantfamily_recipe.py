"""The training recipe that powers the generator at the default budget: identity tokens at the
text tokens' scale (LayerNorm), the face-weighted loss, two heads, and the region mask built
once per resolution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paperlab.core.diffusion import diffusion_loss, make_scheduler
from paperlab.papers.instantfamily import (
    Condition,
    GeneratorConfig,
    InstantFamily,
    RegionMask,
    grid_boxes,
    make_scene,
)
from paperlab.papers.instantfamily.pipeline import face_weighted_loss, face_weights

TINY = dict(size=16, widths=(8, 16), token_dim=16, local_size=2, id_global_dim=32, id_local_dim=16)


def _cond(b: int = 3, k: int = 2) -> tuple[torch.Tensor, Condition]:
    gen = torch.Generator().manual_seed(0)
    scene = make_scene(b, k, gen, size=16, boxes=grid_boxes(k, 16).expand(b, k, 3))
    cond = Condition(
        scene.colour, torch.randn(b, k, 32), torch.randn(b, k, 16, 2, 2), scene.boxes, scene.control
    )
    return scene.images, cond


class _Zero(nn.Module):
    """Predicts 0 everywhere: its x0-loss per pixel is x0²."""

    def forward(self, x_t, t, cond):
        return torch.zeros_like(x_t)


def test_region_mask_is_built_once_per_resolution_and_matches_a_fresh_build():
    boxes = torch.tensor([[[1.0, 1.0, 5.0], [9.0, 9.0, 5.0]]])
    owner = torch.tensor([-1, 0, 0, 1])
    region = RegionMask(boxes, owner, 16)
    first = region.mask(8, 8)
    assert region.mask(8, 8) is first  # reused by every attention call at this resolution
    assert torch.equal(first, RegionMask(boxes, owner, 16).mask(8, 8))
    assert region.mask(4, 4).shape == (1, 16, 4)  # another resolution, its own mask
    w = region.weights(8, 8, torch.float32)
    assert w.shape == (1, 1, 64, 4) and torch.equal(w[:, 0].bool(), first)


def test_face_weights_cover_the_grown_boxes_only():
    boxes = torch.tensor([[[8.0, 8.0, 8.0]]])  # region [7, 17) x [7, 17) on a 32 px canvas
    w = face_weights(boxes, 32, 3.0)[0, 0]
    assert w[7, 7] == 4 and w[16, 16] == 4 and w[6, 10] == 1 and w[17, 10] == 1
    assert int((w == 4).sum()) == 10 * 10


def test_face_weighted_loss_is_the_core_loss_at_zero_weight_and_weighs_faces_otherwise():
    images, cond = _cond()
    scheduler = make_scheduler("ddpm", prediction_type="sample")
    ours = face_weighted_loss(
        _Zero(), images, cond, scheduler, face_weight=0.0, generator=torch.Generator()
    )
    core = diffusion_loss(_Zero(), images, scheduler, cond=cond, generator=torch.Generator())
    torch.testing.assert_close(ours, core)
    weighted = face_weighted_loss(
        _Zero(), images, cond, scheduler, face_weight=3.0, generator=torch.Generator()
    )
    w = face_weights(cond.boxes, 16, 3.0)
    torch.testing.assert_close(weighted, (images**2 * w).mean() / w.mean())
    assert not torch.allclose(weighted, ours)


def test_identity_tokens_are_layer_normed_and_null_rows_stay_zero():
    torch.manual_seed(0)
    model = InstantFamily(GeneratorConfig(**TINY, id_norm=True))
    _, cond = _cond()
    cond.null = torch.tensor([True, False, False])
    tokens, owner = model.embedding_stack(cond)
    ids = tokens[1:, owner >= 0]  # (2, K (L²+1), D) of the non-null rows
    torch.testing.assert_close(ids.mean(-1), torch.zeros(ids.shape[:2]), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        ids.std(-1, unbiased=False), torch.ones(ids.shape[:2]), atol=1e-3, rtol=0
    )
    assert tokens[0, owner >= 0].abs().max() == 0


def test_heads_are_configurable_and_checked():
    model = InstantFamily(GeneratorConfig(**TINY, heads=2))
    heads = {m.heads for m in model.modules() if hasattr(m, "heads") and isinstance(m.heads, int)}
    assert heads == {2}
    with pytest.raises(ValueError, match="heads"):
        GeneratorConfig(**TINY, heads=3)
