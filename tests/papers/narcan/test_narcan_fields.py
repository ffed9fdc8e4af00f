"""NaRCan's fields and synthetic clips: homography maths, SIREN init, the Jacobian, the
clip's exact warps and flow, the metrics' alignment."""

from __future__ import annotations

import math

import pytest
import torch

from paperlab.papers.narcan import (
    HomographyMLP,
    NaRCan,
    Siren,
    apply_homography,
    jacobian,
    make_clip,
)
from paperlab.papers.narcan.metrics import (
    fit_homography_dlt,
    interpolation_error,
    psnr,
    warping_error,
)
from paperlab.papers.narcan.video import apply_h, pixel_grid, sample


def test_homography_mlp_starts_near_identity_and_apply_matches_matrix():
    torch.manual_seed(0)
    h = HomographyMLP(hidden=16)
    out = h(torch.zeros(5, 1))
    assert torch.allclose(out[:, [0, 4]], torch.ones(5, 2), atol=0.3)
    m = torch.tensor([[1.1, 0.1, 0.2, -0.05, 0.9, 0.1, 0.02, -0.03]])
    xy = torch.rand(7, 2) * 2 - 1
    full = torch.cat([m[0], torch.ones(1)]).view(3, 3)
    assert torch.allclose(apply_homography(xy, m.expand(7, 8)), apply_h(full, xy), atol=1e-6)


def test_siren_first_layer_init_bounds():
    s = Siren(in_features=2, out_features=3, hidden=32, layers=2)
    first = s.net[0].linear.weight
    hidden = s.net[1].linear.weight
    assert first.abs().max() <= 1 / 2 + 1e-6
    assert hidden.abs().max() <= math.sqrt(6 / 32) / 30 + 1e-6


def test_jacobian_matches_analytic_derivative():
    x = torch.rand(10, 3, requires_grad=True)
    y = torch.stack([x[:, 0] ** 2 + x[:, 2], x[:, 1] * x[:, 0]], dim=1)
    j = jacobian(y, x)
    expected = torch.zeros(10, 2, 3)
    expected[:, 0, 0], expected[:, 0, 2] = 2 * x[:, 0].detach(), 1
    expected[:, 1, 0], expected[:, 1, 1] = x[:, 1].detach(), x[:, 0].detach()
    assert torch.allclose(j, expected, atol=1e-6)
    assert j.requires_grad  # differentiable: the regulariser trains g


def test_clip_frames_sample_the_canonical_along_the_warps():
    clip = make_clip(num_frames=5, size=16, seed=3)
    assert clip.frames.shape == (5, 3, 16, 16) and clip.canonical.shape == (3, 24, 24)
    grid = pixel_grid(16, 16)
    again = sample(clip.canonical, clip.warp(2, grid), clip.extent).T.reshape(3, 16, 16)
    assert torch.allclose(again, clip.frames[2], atol=1e-5)
    # the inverse warp finds the frame point of a canonical point (the exact flow)
    back = clip.motion.unwarp(float(clip.times[2]), clip.warp(2, grid))
    assert torch.allclose(back, grid, atol=1e-4)
    xy, valid = clip.correspondence(1, 1)
    assert valid.all() and torch.allclose(xy, grid, atol=1e-4)


def test_dlt_recovers_a_homography():
    g = torch.tensor([[1.2, 0.1, 0.3], [-0.2, 0.9, -0.1], [0.05, 0.02, 1.0]])
    src = torch.rand(50, 2) * 2 - 1
    est = fit_homography_dlt(src, apply_h(g, src))
    assert torch.allclose(est, g, atol=1e-4)


def test_consistency_metrics_zero_for_the_input_and_larger_for_noise():
    clip = make_clip(num_frames=4, size=16, seed=0, bump=0.0)
    noisy = clip.frames + 0.3 * torch.randn(
        clip.frames.shape, generator=torch.Generator().manual_seed(0)
    )
    assert warping_error(clip.frames, clip) < 0.2 * warping_error(noisy, clip)
    assert interpolation_error(clip.frames, clip) < 0.5 * interpolation_error(noisy, clip)
    assert psnr(clip.frames, clip.frames) > 100


def test_narcan_renders_and_propagates_its_own_canonical():
    torch.manual_seed(0)
    model = NaRCan(
        frames=3,
        height=8,
        width=8,
        canonical_size=16,
        hidden=16,
        layers=1,
        residual_hidden=8,
        residual_layers=1,
    )
    model.set_region()
    frames = model.render_frames()
    assert frames.shape == (3, 3, 8, 8)
    # a finely rendered canonical, propagated through the warps, is close to the rendering
    with torch.no_grad():
        fine = model.render_canonical(size=256)
    assert (model.propagate(fine) - frames).abs().mean() < 0.02


def test_make_clip_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_frames"):
        make_clip(num_frames=1)
    with pytest.raises(ValueError, match="extent"):
        make_clip(extent=0.5)


def test_dlt_and_psnr_match_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio
    from skimage.transform import ProjectiveTransform

    gen = torch.Generator().manual_seed(1)
    src = torch.rand(40, 2, generator=gen) * 2 - 1
    g = torch.tensor([[0.9, -0.2, 0.1], [0.15, 1.1, -0.3], [0.04, -0.03, 1.0]])
    dst = apply_h(g, src) + 0.01 * torch.randn(40, 2, generator=gen)  # noisy: least squares
    ref = ProjectiveTransform()
    ref.estimate(src.double().numpy(), dst.double().numpy())
    ours = fit_homography_dlt(src, dst)
    assert torch.allclose(ours, torch.from_numpy(ref.params / ref.params[2, 2]).float(), atol=1e-4)
    a = torch.rand(3, 8, 8, generator=gen) * 2 - 1
    b = (a + 0.1 * torch.randn(3, 8, 8, generator=gen)).clamp(-1, 1)
    expected = peak_signal_noise_ratio(((a + 1) / 2).numpy(), ((b + 1) / 2).numpy(), data_range=1)
    assert psnr(a, b) == pytest.approx(expected, rel=1e-4)
