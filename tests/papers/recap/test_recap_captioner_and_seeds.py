"""The captioner's stage 0 (per-cell labels, encoder pre-training), the core image-LLM's conv
stem option, and the seed-aware mixture / long-query judges."""

from __future__ import annotations

import pytest
import torch

from paperlab.core.imagellm import ImageLLM, ImageLLMConfig
from paperlab.papers.recap import render_scenes, sample_scenes
from paperlab.papers.recap.claims import MIN_LONG_R1, PAPER
from paperlab.papers.recap.scenes import CELLS, COLOURS, SHAPES
from paperlab.papers.recap.vision import N_CELL_CLASSES, cell_labels, pretrain_vision


def _llm(**kw) -> ImageLLM:
    base = dict(image_size=32, patch_size=16, vit_dim=16, dim=16, max_text_len=32)
    return ImageLLM(ImageLLMConfig(**(base | kw)))


def test_cell_labels_encode_each_cell_and_leave_empty_cells_zero():
    scenes = sample_scenes(40, seed=3)
    y = cell_labels(scenes)
    assert y.shape == (40, len(CELLS)) and int(y.max()) < N_CELL_CLASSES
    for scene, row in zip(scenes, y, strict=True):
        occupied = {o.cell for o in scene.objects}
        assert {c for c in range(4) if row[c] > 0} == occupied
        codes = {int(row[o.cell]) for o in scene.objects}
        assert len(codes) == len({(o.size, o.colour, o.shape) for o in scene.objects})
    assert N_CELL_CLASSES == 1 + 2 * len(COLOURS) * len(SHAPES)


def test_pretrain_vision_lowers_the_cell_loss_and_touches_only_the_encoder():
    torch.manual_seed(0)
    scenes = sample_scenes(32, seed=1)
    images, labels = render_scenes(scenes, seed=1), cell_labels(scenes)
    model = _llm()
    llm_before = {k: v.clone() for k, v in model.llm.state_dict().items()}
    vit_before = {k: v.clone() for k, v in model.vision.state_dict().items()}
    h = pretrain_vision(
        model, images, labels, steps=40, batch_size=16, lr=3e-3, seed=0, progress=False
    )
    assert h["loss"][-1] < h["loss"][0]
    assert all(torch.equal(v, model.llm.state_dict()[k]) for k, v in llm_before.items())
    assert any(not torch.equal(v, model.vision.state_dict()[k]) for k, v in vit_before.items())


def test_pretrain_vision_refuses_labels_of_the_wrong_shape():
    images = render_scenes(sample_scenes(4, seed=0), seed=0)
    with pytest.raises(ValueError, match="labels"):
        pretrain_vision(
            _llm(),
            images,
            torch.zeros(4, 3, dtype=torch.long),
            steps=1,
            batch_size=2,
            lr=1e-3,
            seed=0,
            progress=False,
        )


def test_conv_stem_is_optional_and_off_by_default():
    plain, stem = _llm(), _llm(stem_channels=8)
    assert plain.stem is None and not any(k.startswith("stem.") for k in plain.state_dict())
    assert any(k.startswith("stem.") for k in stem.state_dict())
    x = torch.rand(2, 3, 32, 32)
    assert stem.encode_images(x).shape == plain.encode_images(x).shape == (2, 4, 16)
    with pytest.raises(ValueError, match="stem_channels"):
        ImageLLMConfig(stem_channels=-1)


def _mixture(**kw) -> dict[str, float]:
    m = dict(
        best_mix_p=0.5,
        best_end_p=1.0,
        gain_over_ends=0.05,
        gain_low=0.02,
        gain_high=0.08,
        gain_seed_min=0.01,
        gain_seed_max=0.09,
        seeds=2.0,
        captioner_object_f1=0.8,
        powered_long_r1=0.3,
    )
    return m | kw


def _claim(cid: str):
    return next(c for c in PAPER.claims if c.id == cid).judged_by


def test_mixture_needs_every_seed_and_the_interval_above_zero():
    judge = _claim("mixture").judge
    assert judge(_mixture())[0] == "holds"
    assert judge(_mixture(gain_seed_min=-0.01))[0] == "inconclusive"  # one seed disagrees
    assert judge(_mixture(gain_low=-0.01))[0] == "inconclusive"
    assert judge(_mixture(gain_over_ends=-0.01, gain_low=-0.03))[0] == "fails"
    verdict, text = judge(_mixture(powered_long_r1=MIN_LONG_R1 / 2))
    assert verdict == "inconclusive" and "not powered" in text


def test_long_query_gain_needs_every_seed_too():
    judge = _claim("long_query_gain").judge
    base = dict(
        best_mix_p=0.5,
        long_gain=0.2,
        short_gain=-0.05,
        long_minus_short_gain=0.25,
        diff_low=0.2,
        diff_high=0.3,
        diff_seed_min=0.1,
        diff_seed_max=0.4,
        seeds=2.0,
        powered_long_r1=0.3,
    )
    assert judge(base)[0] == "holds"
    assert judge(base | {"diff_seed_min": -0.1})[0] == "inconclusive"
    assert judge(base | {"long_gain": -0.01})[0] == "fails"
