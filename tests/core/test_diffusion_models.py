"""core.diffusion: the tiny UNets, one predict_eps for all, LoRA, the attention recorder."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel, UNet2DModel, UNetMotionModel

from paperlab.core.device import torch_threads
from paperlab.core.diffusion import (
    AttentionRecorder,
    add_lora,
    ddim_sample,
    make_scheduler,
    predict_eps,
    tiny_motion_unet,
    tiny_unet,
)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):  # tiny models: per-op overhead, and a busy machine hates 2 threads
        yield


def test_tiny_unets_and_predict_eps_shapes():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    plain = tiny_unet(image_size=8, widths=(8, 16))
    classes = tiny_unet(image_size=8, widths=(8, 16), num_classes=4)
    text = tiny_unet(image_size=8, widths=(8, 16), cross_attention_dim=16)
    assert isinstance(plain, UNet2DModel) and isinstance(text, UNet2DConditionModel)
    assert predict_eps(plain, x, 10).shape == x.shape
    assert predict_eps(classes, x, torch.tensor([3, 900]), torch.tensor([0, 3])).shape == x.shape
    assert predict_eps(text, x, 10, torch.randn(2, 5, 16)).shape == x.shape
    video = tiny_motion_unet(image_size=8, num_frames=4, widths=(8, 16), cross_attention_dim=16)
    assert isinstance(video, UNetMotionModel)
    clip = torch.randn(2, 3, 4, 8, 8)
    assert predict_eps(video, clip, 10, torch.randn(2, 2, 16)).shape == clip.shape


def test_schedulers_and_bad_configs():
    assert type(make_scheduler("ddim")).__name__ == "DDIMScheduler"
    assert type(make_scheduler("ddpm")).__name__ == "DDPMScheduler"
    with pytest.raises(ValueError, match="kind"):
        make_scheduler("euler")
    with pytest.raises(ValueError, match="image_size"):
        tiny_unet(image_size=7, widths=(8, 16))
    with pytest.raises(ValueError, match="cross_attention_dim"):
        tiny_unet(image_size=8, widths=(8, 16), attention=False, cross_attention_dim=8)


def test_lora_trains_only_the_targets_and_freezes_the_base():
    torch.manual_seed(0)
    model = add_lora(tiny_unet(image_size=8, widths=(8, 16), cross_attention_dim=16), r=2)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(any(t in n for t in ("to_q", "to_k", "to_v", "to_out.0")) for n in trainable)
    x, e = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 16)
    base = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        predict_eps(model, x, 100, e).pow(2).mean().backward()
        opt.step()
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)
    with pytest.raises(ValueError, match="target_modules"):
        add_lora(tiny_unet(image_size=8, widths=(8, 16)), target_modules=("nope",))


def test_attention_recorder_records_edits_and_restores():
    torch.manual_seed(0)
    model = tiny_motion_unet(image_size=8, num_frames=4, widths=(8, 16), cross_attention_dim=16)
    clip, text = torch.randn(1, 3, 4, 8, 8), torch.randn(1, 2, 16)
    with torch.no_grad():
        before = predict_eps(model, clip, 50, text)
    temporal = lambda name: "motion_modules" in name  # noqa: E731
    with AttentionRecorder(model, select=temporal) as rec, torch.no_grad():
        same = predict_eps(model, clip, 50, text)
    assert torch.allclose(same, before, atol=1e-5)  # recording changes nothing
    maps = next(iter(rec.maps.values()))
    assert maps.shape[-2:] == (4, 4)  # frames x frames
    assert torch.allclose(maps.sum(-1), torch.ones(()), atol=1e-5)
    uniform = lambda name, p: torch.full_like(p, 1 / p.shape[-1])  # noqa: E731
    with AttentionRecorder(model, select=temporal, edit=uniform), torch.no_grad():
        edited = predict_eps(model, clip, 50, text)
    assert not torch.allclose(edited, before, atol=1e-4)
    with torch.no_grad():
        assert torch.allclose(predict_eps(model, clip, 50, text), before, atol=1e-6)  # restored
    with pytest.raises(ValueError, match="select"):
        AttentionRecorder(model, select=lambda name: False)


def test_everything_accepts_a_device():
    model = tiny_unet(image_size=8, widths=(8, 16)).to("cpu")
    out = ddim_sample(model, (1, 3, 8, 8), steps=2, device="cpu")
    assert out.device.type == "cpu"
    with pytest.raises(ValueError, match="device"):
        from paperlab.core.device import resolve_device

        resolve_device("tpu")
