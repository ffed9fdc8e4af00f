"""PLLaVA's pooling projector against a hand-written reference, LoRA through peft (zero at
init, alpha rescaling, what trains), image inputs, checkpoints, bad arguments."""

from __future__ import annotations

import pytest
import torch

from paperlab.core.imagellm import ImageLLM, ImageLLMConfig
from paperlab.papers.pllava import PLLaVA


def _base(seed: int = 0) -> ImageLLM:
    torch.manual_seed(seed)
    cfg = ImageLLMConfig(
        image_size=8,
        patch_size=2,
        vit_dim=16,
        vit_depth=1,
        vit_heads=2,
        dim=16,
        n_layers=1,
        n_heads=2,
        max_text_len=32,
        max_visual_tokens=4 * 16,
    )  # a 4x4 grid of patch tokens, room for 4 unpooled frames
    return ImageLLM(cfg).eval()


def _clips(B: int = 2, T: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(B, T, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_pooling_matches_reference():
    model = PLLaVA(_base(), num_frames=4, pooling_shape=(2, 2, 2), lora_r=4, lora_alpha=1.0)
    feats = model.frame_features(_clips())
    assert feats.shape == (2, 4, 16, 16)
    got = model.video_tokens(feats)
    assert got.shape == (2, 2 * 2 * 2, 16) and model.num_visual_tokens == 8
    # reference: project each frame, then average each (2 frames x 2 rows x 2 cols) block,
    # flattened frame-major then row-major (the official rearranges)
    x = model.base.project(feats.flatten(0, 1)).reshape(2, 4, 4, 4, 16)  # (B, T, h, w, C)
    ref = x.reshape(2, 2, 2, 2, 2, 2, 2, 16).mean(dim=(2, 4, 6)).reshape(2, 8, 16)
    torch.testing.assert_close(got, ref)


def test_no_pooling_concatenates_frames():
    model = PLLaVA(_base(), num_frames=4, pooling_shape=None, lora_r=4, lora_alpha=1.0)
    feats = model.frame_features(_clips())
    got = model.video_tokens(feats)
    assert got.shape == (2, 64, 16)
    torch.testing.assert_close(got[:, 16:32], model.base.project(feats[:, 1]))


def test_image_input_is_repeated_over_frames():
    model = PLLaVA(_base(), num_frames=4, pooling_shape=(4, 2, 2), lora_r=4, lora_alpha=1.0)
    image = _clips(1, 1)[:, 0]
    clip = image[:, None].expand(-1, 4, -1, -1, -1)
    torch.testing.assert_close(model.frame_features(image), model.frame_features(clip))


def test_lora_starts_as_the_image_model_and_alpha_rescales():
    base = _base()
    vis = base.visual_tokens(_clips(1, 1)[:, 0])
    ref = base.loss(vis, ["q"], ["a"])
    model = PLLaVA(base, num_frames=4, pooling_shape=(4, 2, 2), lora_r=4, lora_alpha=2.0)
    layers = model.lora_layers()
    assert len(layers) == 2  # q_proj and v_proj of the one layer
    torch.testing.assert_close(model.base.loss(vis, ["q"], ["a"]), ref)  # B = 0 at init
    assert all(layer.scaling["default"] == pytest.approx(0.5) for layer in layers)
    model.set_lora_alpha(0.25)
    assert all(layer.scaling["default"] == pytest.approx(0.0625) for layer in layers)
    trainable = {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"projector", "llm"}
    assert all(
        "lora_" in n or ".projector." in f".{n}"
        for n, p in model.named_parameters()
        if p.requires_grad
    )


def test_alpha_moves_the_answer_scale():
    model = PLLaVA(_base(), num_frames=4, pooling_shape=(4, 2, 2), lora_r=4, lora_alpha=1.0)
    for layer in model.lora_layers():
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.5)
    feats = model.frame_features(_clips())
    small, big = [], []
    for alpha, out in ((1e-6, small), (1.0, big)):
        model.set_lora_alpha(alpha)
        out.append(model.loss(feats, ["q", "q"], ["a", "b"]))
    base_loss = model.base.loss(model.video_tokens(feats), ["q", "q"], ["a", "b"])
    model.set_lora_alpha(1e-6)
    torch.testing.assert_close(small[0], model.loss(feats, ["q", "q"], ["a", "b"]))
    assert not torch.allclose(small[0], big[0])
    assert torch.isfinite(base_loss)


def test_save_load_round_trip(tmp_path):
    model = PLLaVA(_base(), num_frames=4, pooling_shape=(4, 2, 2), lora_r=4, lora_alpha=1.0)
    for layer in model.lora_layers():
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.1)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = PLLaVA.from_pretrained(tmp_path / "ckpt")
    assert loaded.settings() == model.settings()
    for (k, v), (k2, v2) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(v, v2)
    clips = _clips()
    assert loaded.generate(clips, ["q", "r"], max_new_tokens=5) == model.generate(
        clips, ["q", "r"], max_new_tokens=5
    )
    with pytest.raises(FileNotFoundError, match="no PLLaVA checkpoint"):
        PLLaVA.from_pretrained(tmp_path / "missing")


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="pooling_shape"):
        PLLaVA(_base(), num_frames=4, pooling_shape=(8, 2, 2))
    with pytest.raises(ValueError, match="max_visual_tokens"):
        PLLaVA(_base(), num_frames=8, pooling_shape=None)
    model = PLLaVA(_base(), num_frames=4, pooling_shape=(4, 2, 2))
    with pytest.raises(ValueError, match="clips"):
        model.frame_features(_clips(T=3))
    with pytest.raises(ValueError, match="alpha"):
        model.set_lora_alpha(0)
