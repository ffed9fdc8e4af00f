"""Loss invariances, the ray-caster's exactness, DA-2K-mini pairs and the preprocessing sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperlab.papers.depth_anything_v2.data import (
    Camera,
    Plane,
    Scene,
    Sphere,
    add_outlier_blobs,
    depth_metrics,
    pair_accuracy,
    render,
    sample_pairs,
)
from paperlab.papers.depth_anything_v2.losses import (
    depth_loss,
    gradient_matching_loss,
    normalize_ssi,
    top_loss_mask,
)
from paperlab.papers.depth_anything_v2.transform import preprocess, target_size


def _maps(seed=0, shape=(2, 16, 16)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) + 0.1


def test_ssi_loss_is_scale_and_shift_invariant():
    target = _maps()
    pred = 3.7 * target + 0.4
    loss, parts = depth_loss(pred, target)
    assert loss.item() == pytest.approx(0.0, abs=1e-5) and parts["gm"] == pytest.approx(0, abs=1e-5)
    other, _ = depth_loss(_maps(1), target)
    assert other.item() > 0.5  # a different map costs
    n = normalize_ssi(target, torch.ones_like(target, dtype=torch.bool))
    assert n.flatten(1).median(1).values.abs().max() < 1e-6
    assert n.abs().mean((1, 2)).sub(1).abs().max() < 1e-5  # unit mean absolute deviation


def test_gradient_matching_is_zero_for_a_constant_offset_and_sees_edges():
    target = _maps()
    assert gradient_matching_loss(target + 5.0, target).item() == pytest.approx(0.0, abs=1e-6)
    step = target.clone()
    step[:, :, 8:] += 1.0  # an edge the prediction does not have
    assert gradient_matching_loss(step, target).item() > 0.1
    # four scales: a 16-pixel map sub-sampled by 1, 2, 4, 8
    one = gradient_matching_loss(step, target, scales=1).item()
    assert gradient_matching_loss(step, target, scales=4).item() > one


def test_top_ignore_drops_the_largest_residuals_per_image():
    residual = torch.arange(200, dtype=torch.float32).reshape(2, 10, 10)
    mask = torch.ones_like(residual, dtype=torch.bool)
    keep = top_loss_mask(residual, mask, 0.1)
    assert keep.sum().item() == 180
    assert not keep[0].flatten()[90:].any() and keep[0].flatten()[:90].all()
    # a gross error on 5% of the pixels: ignored with the top 10%, not without
    target = _maps()
    pred = target.clone()
    pred[:, :2, :8] = 50.0
    with_ignore, _ = depth_loss(pred, target, top_ignore=0.1, gm_weight=0.0)
    without, _ = depth_loss(pred, target, top_ignore=0.0, gm_weight=0.0)
    assert with_ignore.item() < 0.5 * without.item()
    with pytest.raises(ValueError, match="top_ignore"):
        top_loss_mask(residual, mask, 1.0)


def test_ray_caster_ground_plane_depth_is_analytic():
    h, pitch, fov, H, W = 1.5, np.deg2rad(10.0), np.deg2rad(60.0), 24, 32
    scene = Scene([Plane((0, -h, 0), (0, 1, 0))], camera=Camera(fov_y=fov, pitch=pitch))
    _, depth = render(scene, H, W)
    f = (H / 2) / np.tan(fov / 2)
    rows = np.arange(H) + 0.5
    y_cam = -(rows - H / 2) / f
    down = np.sin(pitch) - np.cos(pitch) * y_cam  # -(world y) of the ray with camera z = 1
    expected = np.where(down > 0, h / np.where(down > 0, down, 1), np.inf)
    np.testing.assert_allclose(depth, np.repeat(expected[:, None], W, 1), rtol=1e-5)


def test_ray_caster_sphere_front_depth():
    scene = Scene([Sphere((0, 0, 5), 1.0)])
    _, depth = render(scene, 9, 9)
    assert depth[4, 4] == pytest.approx(4.0, rel=1e-3)  # the centre ray hits z = 5 - 1
    assert np.isinf(depth[0, 0])


def test_pairs_are_ordered_and_scored():
    disp = np.tile(np.linspace(1, 3, 20)[:, None], (1, 30)).astype(np.float32)
    valid = np.ones_like(disp, bool)
    valid[:, :5] = False
    pairs = sample_pairs(disp, valid, 300, seed=0)
    a, b = disp[pairs[:, 0], pairs[:, 1]], disp[pairs[:, 2], pairs[:, 3]]
    assert (a > 1.15 * b).all() and valid[pairs[:, 1] * 0 + pairs[:, 0], pairs[:, 1]].all()
    assert pair_accuracy(disp, pairs) == 1.0 and pair_accuracy(-disp, pairs) == 0.0
    near = sample_pairs(disp, valid, 100, max_distance=3, seed=0)
    assert np.abs(near[:, :2] - near[:, 2:]).max() <= 3
    m = depth_metrics(2 * disp + 1, disp, valid)  # any affine map of the truth is perfect
    assert m["abs_rel"] == pytest.approx(0.0, abs=1e-5) and m["delta1"] == 1.0


def test_outlier_blobs_corrupt_only_the_chosen_share():
    clean = _maps(shape=(40, 16, 16))
    noisy = add_outlier_blobs(clean, fraction=0.5, seed=0)
    changed = (noisy != clean).flatten(1).any(1)
    assert 10 <= changed.sum() <= 30
    assert add_outlier_blobs(clean, fraction=0.0, seed=0).equal(clean)


def test_preprocessing_sizes_follow_the_official_resize():
    assert target_size(500, 741) == (518, 770)  # the motorcycle photo, short side 518
    assert target_size(100, 100) == (518, 518)
    assert target_size(741, 500, input_size=48, multiple_of=8) == (72, 48)
    x = preprocess(np.zeros((30, 50, 3), np.uint8), input_size=28, multiple_of=14)
    assert x.shape == (1, 3, 28, 42)
    assert x[0, 0, 0, 0].item() == pytest.approx(-0.485 / 0.229, rel=1e-4)  # ImageNet stats
    with pytest.raises(ValueError, match="image"):
        preprocess(np.zeros((4, 4, 5), np.uint8))


def test_same_row_pairs_stay_within_the_row_bound_and_defeat_the_layout_rule():
    from paperlab.papers.depth_anything_v2.claims import SAME_ROW_OFFSET
    from paperlab.papers.depth_anything_v2.data import motorcycle

    _, disp, valid = motorcycle()
    pairs = sample_pairs(disp, valid, 2000, max_row_offset=SAME_ROW_OFFSET, seed=2)
    assert len(pairs) == 2000
    assert np.abs(pairs[:, 0] - pairs[:, 2]).max() <= SAME_ROW_OFFSET
    a, b = disp[pairs[:, 0], pairs[:, 1]], disp[pairs[:, 2], pairs[:, 3]]
    assert (a > 1.15 * b).all()
    assert valid[pairs[:, 0], pairs[:, 1]].all() and valid[pairs[:, 2], pairs[:, 3]].all()
    rows = np.mgrid[0 : disp.shape[0], 0 : disp.shape[1]][0].astype(np.float32)
    # "lower in the picture is closer": ~0.79 on random pairs, chance on same-row pairs
    assert pair_accuracy(rows, sample_pairs(disp, valid, 2000, seed=0)) > 0.75
    assert abs(pair_accuracy(rows, pairs) - 0.5) < 0.03
    assert pair_accuracy(disp, pairs) == 1.0  # the truth still ranks them all
    # but "the sides are closer than the centre" does rank them (~0.32): hence the mirror pairs
    sides = np.abs(np.mgrid[0 : disp.shape[0], 0 : disp.shape[1]][1] - (disp.shape[1] - 1) / 2)
    assert pair_accuracy(sides, pairs) < 0.4
    mirror = sample_pairs(disp, valid, 2000, max_row_offset=SAME_ROW_OFFSET, mirrored=True, seed=3)
    assert len(mirror) == 2000 and np.abs(mirror[:, 0] - mirror[:, 2]).max() <= SAME_ROW_OFFSET
    assert np.abs(mirror[:, 3] - (disp.shape[1] - 1 - mirror[:, 1])).max() <= SAME_ROW_OFFSET
    a, b = disp[mirror[:, 0], mirror[:, 1]], disp[mirror[:, 2], mirror[:, 3]]
    assert (a > 1.15 * b).all() and pair_accuracy(disp, mirror) == 1.0
    assert abs(pair_accuracy(rows, mirror) - 0.5) < 0.03  # both layout rules at chance
    assert abs(pair_accuracy(sides.astype(np.float32), mirror) - 0.5) < 0.03


def test_same_row_pairs_reject_bad_arguments():
    disp = np.tile(np.linspace(1, 3, 20)[None], (10, 1)).astype(np.float32)
    valid = np.ones_like(disp, bool)
    zero = sample_pairs(disp, valid, 100, max_row_offset=0, seed=0)
    assert (zero[:, 0] == zero[:, 2]).all()
    with pytest.raises(ValueError, match="at most one"):
        sample_pairs(disp, valid, 10, max_distance=2, max_row_offset=2)
    with pytest.raises(ValueError, match="max_row_offset"):
        sample_pairs(disp, valid, 10, max_row_offset=-1)
    with pytest.raises(ValueError, match="mirrored"):
        sample_pairs(disp, valid, 10, mirrored=True)
    mirror = sample_pairs(disp, valid, 50, max_row_offset=0, mirrored=True, seed=0)
    assert (mirror[:, 1] + mirror[:, 3] == disp.shape[1] - 1).all()


def test_real_photo_claims_need_the_teacher_to_rank_mirror_pairs():
    from paperlab.papers.depth_anything_v2.claims import ROW_MARGIN, judge_real, judge_student

    m = dict(teacher_pair_acc=0.80, teacher_mirror_pair_acc=0.5 + ROW_MARGIN / 2, pair_gap=0.05)
    m |= dict(pair_band=0.01, abs_rel_gain=0.01, delta1_gain=0.01, pair_acc_real=0.8)
    m |= dict(pair_acc_synthetic=0.75, pair_acc_drop=0.0, speedup=3.0)
    for judge in (judge_real, judge_student):
        verdict, why = judge(m)
        assert verdict == "inconclusive" and "teacher_mirror_pair_acc" in why
        assert judge(m | dict(teacher_mirror_pair_acc=0.5 + 2 * ROW_MARGIN))[0] == "holds"
        assert judge(m | dict(teacher_pair_acc=0.55, teacher_mirror_pair_acc=0.9))[0] == (
            "inconclusive"
        )
