"""NaRCan's fitting: the scaled official schedule, the held-fixed prior target, the stages."""

from __future__ import annotations

import torch

from paperlab.papers.narcan import (
    NaRCan,
    PriorSchedule,
    PriorTarget,
    fit_fields,
    fit_homography,
    frame_psnr,
    make_clip,
    stage_two_model,
)


def test_official_schedule_unscaled():
    s = PriorSchedule.scaled(12500)
    assert s.start == 1000
    assert s.phase(1000) == (10, 0.4) and s.phase(3000) == (10, 0.4)
    assert s.phase(3001) == (100, 0.3) and s.phase(6000) == (2000, 0.2)
    # 1000..3000 every 10 (201 calls), 3100..5000 every 100 (20), 6000..12000 every 2000 (4)
    assert s.calls(12500) == 201 + 20 + 4
    every = PriorSchedule.scaled(12500, every_step=True)
    assert every.calls(12500) == 11500 and every.phase(4000) == (1, 0.3)


def test_scaled_schedule_keeps_the_shape():
    s = PriorSchedule.scaled(1250)
    assert s.start == 100 and s.phases == ((300, 1, 0.4), (500, 10, 0.3), (None, 200, 0.2))
    assert s.refreshes(100) and not s.refreshes(99)


def test_prior_target_is_held_fixed_between_refreshes():
    calls = []

    def refine(image, strength, seed):
        calls.append((strength, seed))
        return torch.full_like(image, float(len(calls)) / 10)

    target = PriorTarget(refine, PriorSchedule(start=2, phases=((None, 3, 0.3),)), seed=5)
    torch.manual_seed(0)
    model = NaRCan(frames=2, height=4, width=4, canonical_size=8, hidden=8, layers=1)
    for step in range(2, 9):
        target.loss(model, step)
    assert target.calls == 3  # steps 2 (the start), 3 and 6
    assert calls == [(0.3, 5), (0.3, 6), (0.3, 7)]
    assert torch.allclose(target.target, torch.full_like(target.target, 0.3))


def test_stages_fit_a_tiny_clip_and_freeze_the_homography():
    clip = make_clip(num_frames=3, size=16, seed=1)
    stage1, hist = fit_homography(clip.frames, steps=30, hidden=16, layers=1, canonical_size=24)
    assert hist["loss"][-1] < hist["loss"][0]
    assert not any(p.requires_grad for p in stage1.homography.parameters())
    x0, y0, x1, y1 = stage1.region.tolist()
    assert x0 < x1 and y0 < y1
    model = stage_two_model(stage1, hidden=16, layers=1, residual_hidden=8, residual_layers=1)
    before = [p.clone() for p in model.homography.parameters()]
    calls = []

    def refine(image, strength, seed):
        calls.append(strength)
        return image.detach()

    target = PriorTarget(refine, PriorSchedule.scaled(40))
    hist = fit_fields(model, clip.frames, steps=40, prior=target)
    assert all(
        torch.equal(a, b) for a, b in zip(before, model.homography.parameters(), strict=True)
    )
    assert hist["prior_calls"] == [float(len(calls))] and len(calls) >= 2
    assert frame_psnr(model.render_frames(), clip.frames) > 12


def test_seed_results_round_trip_through_the_disk_cache_codec(tmp_path):
    from paperlab.papers.narcan.runs import SeedResult, SeedResultCodec

    result = SeedResult({"hybrid_recon_psnr": 41.5}, {"truth": torch.rand(3, 8, 8)})
    SeedResultCodec().save(result, tmp_path)
    back = SeedResultCodec().load(tmp_path)
    assert back.figures == result.figures
    assert torch.equal(back.images["truth"], result.images["truth"])
