"""The first version's location-aware semantic guidance: the masks from the subject token's
cross-attention, the foreground / background loss on temporal keys, and that the guidance pulls
the clone's features towards the appearance branch's."""

from __future__ import annotations

import pytest
import torch

from paperlab.core.device import torch_threads
from paperlab.core.diffusion import AttentionRecorder, predict_eps
from paperlab.papers.motionclone import (
    ClipDenoiser,
    CloneConfig,
    VideoModelConfig,
    clone_motion,
    make_clips,
    temporal_attention_names,
)
from paperlab.papers.motionclone.semantic import (
    appearance_masks,
    cross_attention_names,
    recorded_keys,
    reference_masks,
    semantic_loss,
    subject_map,
)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def _blob(side: int, y: int, x: int) -> torch.Tensor:
    """(1, 1, side*side) map: 1 on a 2x2 blob at (y, x), 0.1 elsewhere."""
    m = torch.full((side, side), 0.1)
    m[y : y + 2, x : x + 2] = 1.0
    return m.reshape(1, 1, -1)


def test_reference_masks_centre_a_gaussian_on_the_subject():
    fore, back = reference_masks(_blob(8, 5, 1), threshold=0.3, sigma=2.5)
    fore, back = fore.reshape(8, 8), back.reshape(8, 8)
    assert fore[5:7, 1:3].min() > 0.9  # the blob, near its centroid (5.5, 1.5)
    assert fore.sum() == fore[5:7, 1:3].sum()  # nothing outside the mask
    assert back[5:7, 1:3].max() == 0  # the subject is not background
    assert back[0, 7] > back[4, 3] > 0  # background weight grows away from the subject
    flat = torch.zeros(1, 1, 64)  # a flat map normalises to 0: no NaN, no foreground
    f2, b2 = reference_masks(flat, threshold=0.3, sigma=2.5)
    assert torch.isfinite(b2).all() and f2.sum() == 0


def test_subject_map_normalises_the_token_over_each_frame():
    probs = torch.rand(6, 2, 16, 3)  # (B*F = 2*3, heads, H*W, L_text)
    m = subject_map({"a": probs, "b": probs.flip(0)}, token=1, batch=2)
    assert m.shape == (2, 3, 16)
    assert torch.allclose(m.amax(-1), torch.ones(2, 3), atol=1e-4)
    assert torch.allclose(m.amin(-1), torch.zeros(2, 3))
    fore, back = appearance_masks(m, 0.3)
    assert torch.equal(fore + back, torch.ones_like(m))


def test_semantic_loss_compares_foregrounds_and_backgrounds_separately():
    torch.manual_seed(0)
    b, f, side, d = 1, 2, 4, 5
    app = torch.randn(b * side * side, f, d)
    subject = _blob(side, 0, 0).expand(b, f, -1)
    ref, appm = reference_masks(subject, 0.3, 2.5), appearance_masks(subject, 0.3)
    same = semantic_loss({"k": app}, {"k": app.clone()}, b, reference=appm, appearance=appm)
    assert same.item() == pytest.approx(0.0, abs=1e-10)
    # moving the generated keys' background changes the loss; the gradient reaches gen only
    gen = app.clone().requires_grad_(True)
    shifted = gen + 3.0 * appm[1][0].T.unsqueeze(-1)  # (H*W, F, 1): the background pixels
    loss = semantic_loss({"k": app}, {"k": shifted}, b, reference=ref, appearance=appm)
    assert loss.item() > 1.0
    (grad,) = torch.autograd.grad(loss, gen)
    assert grad.abs().sum() > 0
    # the global form: the appearance's mean key vs each frame's mean key
    glob = semantic_loss({"k": app}, {"k": app + 1.0}, b)
    assert glob.item() == pytest.approx(
        ((app.mean(dim=(0, 1)) - (app + 1.0).mean(dim=0)) ** 2).mean().item(), rel=1e-5
    )
    with pytest.raises(ValueError, match="both or neither"):
        semantic_loss({"k": app}, {"k": app}, b, reference=ref)


def test_keys_and_masks_come_from_the_named_layers():
    torch.manual_seed(0)
    model = ClipDenoiser(VideoModelConfig(widths=(8, 16), text_dim=8, frames=4)).eval()
    keys = temporal_attention_names(model, ("up_blocks.0",))
    cross = cross_attention_names(model, ("up_blocks.0",))
    clip = make_clips(2, frames=4, seed=1).clips
    with (
        AttentionRecorder(model, select=lambda n: n in cross) as rec,
        recorded_keys(model, keys) as k,
    ):
        predict_eps(model, clip, 500, torch.tensor([[0, 1], [2, 0]]))
    assert set(k) == set(keys) and set(rec.maps) == set(cross)
    side = 8  # up_blocks.0 of a 16 px, two-level UNet
    assert next(iter(k.values())).shape[:2] == (2 * side * side, 4)
    assert subject_map(rec.maps, 1, batch=2).shape == (2, 4, side * side)
    with pytest.raises(ValueError, match="semantic_blocks"):
        cross_attention_names(model, ("up_blocks.1",))  # no cross-attention there


def test_semantic_guidance_pulls_the_clone_towards_the_appearance_branch():
    # as the motion test: an untrained eps model, whose x0 carries the guided x_t
    torch.manual_seed(0)
    config = VideoModelConfig(widths=(8, 16), text_dim=8, frames=4, prediction="epsilon")
    model = ClipDenoiser(config).eval()
    refs = make_clips(2, frames=4, seed=4)
    prompt = torch.tensor([[0, 1], [2, 0]])
    base = dict(steps=6, guidance_steps=4, warm_up_steps=1, cool_up_steps=1, mode="none")
    names = temporal_attention_names(model, ("up_blocks.0",))

    def keys_of(x0: torch.Tensor) -> dict[str, torch.Tensor]:
        with recorded_keys(model, names) as k, torch.no_grad():
            predict_eps(model, x0, 0, prompt)
        return k

    plain = clone_motion(model, refs.clips, prompt, CloneConfig(**base), seed=0)
    target = keys_of(plain)  # the appearance branch's end point
    # a shifted start noise makes the guided run differ from the appearance branch
    x_T = torch.randn(refs.clips.shape, generator=torch.Generator().manual_seed(9))
    off = clone_motion(model, refs.clips, prompt, CloneConfig(**base), seed=0, x_T=x_T)
    guided_cfg = CloneConfig(**base, semantic_weight=1e4)
    guided = clone_motion(model, refs.clips, prompt, guided_cfg, seed=0, x_T=x_T)
    assert not torch.equal(off, guided)
    far = float(semantic_loss(target, keys_of(off), 2))
    near = float(semantic_loss(target, keys_of(guided), 2))
    assert near < far
    located = clone_motion(
        model, refs.clips, prompt, guided_cfg, seed=0, x_T=x_T, reference_prompt=refs.prompts
    )
    assert torch.isfinite(located).all() and not torch.equal(located, guided)
    with pytest.raises(ValueError, match="reference_prompt"):
        clone_motion(model, refs.clips, prompt, guided_cfg, reference_prompt=prompt[:1])
    with pytest.raises(ValueError, match="semantic_weight"):
        CloneConfig(semantic_weight=-1)
