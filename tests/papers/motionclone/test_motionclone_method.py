"""MotionClone's pieces: the official uneven timesteps, the top-1 representation, the loss,
the warm-up / cool-down ramp, and that guidance steers the temporal attention."""

from __future__ import annotations

import pytest
import torch

from paperlab.core.device import torch_threads
from paperlab.core.diffusion import AttentionRecorder, ddim_sample, make_scheduler, predict_eps
from paperlab.papers.motionclone import (
    ClipDenoiser,
    CloneConfig,
    VideoModelConfig,
    clone_motion,
    empty_prompt,
    make_clips,
    motion_representation,
    temporal_attention_names,
    temporal_loss,
    uneven_timesteps,
)
from paperlab.papers.motionclone.motionclone import ramp


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ClipDenoiser(VideoModelConfig(widths=(8, 16), text_dim=8, frames=4)).eval()


def test_uneven_timesteps_follow_the_official_config():
    ts = uneven_timesteps(300, 180, 0.4)  # configs/t2v_object.yaml
    assert len(ts) == 300 and ts[0] == 999 and ts[-1] == 0
    assert min(ts[:180]) == 600 and max(ts[180:]) == 599
    assert all(a > b for a, b in zip(ts, ts[1:], strict=False))
    with pytest.raises(ValueError, match="steps"):
        uneven_timesteps(900, 800, 0.4)  # more guided steps than timesteps in [600, 999]


def test_ramp_is_the_official_warm_up_and_cool_down():
    cfg = CloneConfig(steps=30, guidance_steps=18, warm_up_steps=2, cool_up_steps=2, weight=10.0)
    ts = uneven_timesteps(30, 18, 0.4)
    w = ramp(ts, cfg)
    assert [w(ts[i]) for i in (0, 1, 2)] == [5.0, 10.0, 10.0]  # (i + 1) / warm_up
    assert w(ts[16]) == 10.0 and w(ts[17]) == 5.0  # (G - i) / cool_up for i > G - C
    assert w(ts[18]) == 0.0  # unguided steps


def test_representation_is_the_top1_of_the_reference_pass(model):
    cfg = CloneConfig(blocks=("up_blocks.1",))
    clip = make_clips(1, frames=4, seed=1).clips
    sparse = motion_representation(model, clip, cfg, seed=3)
    dense = motion_representation(model, clip, cfg, seed=3, dense=True)
    assert set(sparse) == set(temporal_attention_names(model, cfg.blocks))
    for name, (values, index) in sparse.items():
        maps = dense[name][0]  # (B*H*W, heads, F, F)
        assert values.shape == index.shape == (*maps.shape[:-1], 1)
        assert torch.equal(values[..., 0], maps.max(dim=-1).values)
        assert torch.equal(torch.gather(maps, -1, index), values)
    # the loss of the reference's own maps against its representation is zero
    assert float(temporal_loss({n: dense[n][0] for n in dense}, sparse)) == 0.0
    assert float(temporal_loss({n: dense[n][0] for n in dense}, dense)) == 0.0


def test_without_guidance_clone_is_plain_cfg_sampling(model):
    refs = make_clips(2, frames=4, seed=2)
    prompt = torch.tensor([[0, 1], [2, 0]])
    cfg = CloneConfig(steps=4, guidance_steps=2, warm_up_steps=1, cool_up_steps=1, mode="none")
    out = clone_motion(model, refs.clips, prompt, cfg, seed=5)
    plain = ddim_sample(
        model,
        refs.clips.shape,
        seed=6,
        cond=prompt,
        null_cond=empty_prompt(1)[0],
        guidance_scale=8.5,
        timesteps=uneven_timesteps(4, 2, 0.4),
        scheduler=make_scheduler("ddim", clip_sample=True, prediction_type="sample"),
    )
    assert torch.equal(out, plain)


def test_guidance_pulls_the_attention_towards_the_reference():
    # an untrained eps model: its x0 = (x_t - sqrt(1-ab) eps) / sqrt(ab) carries the guided
    # x_t into the sample; an untrained x0 model's output ignores x_t, so the mechanism is
    # checked here on eps (AnimateDiff's own prediction type) and on the trained x0 model by
    # the claims' runs
    torch.manual_seed(0)
    config = VideoModelConfig(widths=(8, 16), text_dim=8, frames=4, prediction="epsilon")
    model = ClipDenoiser(config).eval()
    refs = make_clips(2, frames=4, seed=4)
    prompt = torch.tensor([[0, 1], [2, 0]])
    base = dict(steps=6, guidance_steps=4, warm_up_steps=1, cool_up_steps=1, weight=2e5)
    rep = motion_representation(model, refs.clips, CloneConfig(**base), seed=0)
    names = list(rep)

    def loss_of(x0: torch.Tensor) -> float:  # re-noise at the reference's level, read the maps
        noisy = 0.8 * x0 + 0.6 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
        with AttentionRecorder(model, select=lambda n: n in names) as rec, torch.no_grad():
            predict_eps(model, noisy, 400, prompt)
        return float(temporal_loss(rec.maps, rep))

    none = clone_motion(model, refs.clips, prompt, CloneConfig(**base, mode="none"), seed=0)
    sparse = clone_motion(model, refs.clips, prompt, CloneConfig(**base, mode="sparse"), seed=0)
    assert not torch.equal(none, sparse)
    assert loss_of(sparse) < loss_of(none)


def test_bad_input_names_the_argument(model):
    with pytest.raises(ValueError, match="mode"):
        CloneConfig(mode="medium")
    with pytest.raises(ValueError, match="guidance_steps"):
        CloneConfig(steps=10, guidance_steps=10)
    with pytest.raises(ValueError, match="reference"):
        clone_motion(model, torch.zeros(1, 3, 16, 16), torch.tensor([[0, 0]]))
    with pytest.raises(ValueError, match="blocks"):
        temporal_attention_names(model, ("up_blocks.7",))
