"""The DPT model's shapes, and the official-layout loader against an independent DINOv2 forward."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from paperlab.papers.depth_anything_v2.model import DepthAnythingV2, DepthConfig, default_taps
from paperlab.papers.depth_anything_v2.official import (
    config_from_state_dict,
    convert_checkpoint,
    load_official,
)
from paperlab.papers.depth_anything_v2.pipeline import load_depth_model


def _official_state(
    *, dim=32, depth=4, heads=2, patch=4, grid=4, features=8, out=(4, 8, 16, 16), seed=0
) -> dict[str, torch.Tensor]:
    """A random state dict in the official layout (DINOv2 with LayerScale + the DPT head)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, std=0.1):
        return torch.randn(*shape, generator=g) * std

    s = {
        "pretrained.cls_token": r(1, 1, dim),
        "pretrained.pos_embed": r(1, 1 + grid * grid, dim),
        "pretrained.mask_token": r(1, dim),
        "pretrained.patch_embed.proj.weight": r(dim, 3, patch, patch),
        "pretrained.patch_embed.proj.bias": r(dim),
        "pretrained.norm.weight": 1 + r(dim),
        "pretrained.norm.bias": r(dim),
    }
    for i in range(depth):
        b = f"pretrained.blocks.{i}."
        s |= {
            b + "norm1.weight": 1 + r(dim),
            b + "norm1.bias": r(dim),
            b + "attn.qkv.weight": r(3 * dim, dim),
            b + "attn.qkv.bias": r(3 * dim),
            b + "attn.proj.weight": r(dim, dim),
            b + "attn.proj.bias": r(dim),
            b + "ls1.gamma": r(dim, std=0.5),
            b + "norm2.weight": 1 + r(dim),
            b + "norm2.bias": r(dim),
            b + "mlp.fc1.weight": r(4 * dim, dim),
            b + "mlp.fc1.bias": r(4 * dim),
            b + "mlp.fc2.weight": r(dim, 4 * dim),
            b + "mlp.fc2.bias": r(dim),
            b + "ls2.gamma": r(dim, std=0.5),
        }
    head = DepthAnythingV2(
        DepthConfig(
            image_size=grid * patch,
            patch_size=patch,
            dim=dim,
            depth=depth,
            n_heads=heads,
            taps=default_taps(depth),
            features=features,
            out_channels=out,
        )
    ).depth_head
    for k, v in head.state_dict().items():
        s["depth_head." + k] = r(*v.shape)
    return s


def _reference_tokens(s: dict, x: torch.Tensor, taps, heads: int) -> list[torch.Tensor]:
    """DINOv2's get_intermediate_layers(norm=True), written from the official layout directly."""
    P = "pretrained."
    w = s[P + "patch_embed.proj.weight"]
    p, dim = w.shape[-1], w.shape[0]
    t = F.conv2d(x, w, s[P + "patch_embed.proj.bias"], stride=p).flatten(2).transpose(1, 2)
    B, N, _ = t.shape
    t = torch.cat([s[P + "cls_token"].expand(B, -1, -1), t], 1)
    pos = s[P + "pos_embed"]
    side = math.isqrt(pos.shape[1] - 1)
    gh, gw = x.shape[2] // p, x.shape[3] // p
    grid = pos[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    if (gh, gw) != (side, side):  # DINOv2 keeps the learned grid when it fits
        grid = F.interpolate(
            grid, scale_factor=((gh + 0.1) / side, (gw + 0.1) / side), mode="bicubic"
        )
    t = t + torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)], 1)

    def ln(z, name):
        return F.layer_norm(z, (dim,), s[P + name + ".weight"], s[P + name + ".bias"], 1e-6)

    outs = []
    for i in range(max(taps) + 1):
        b = f"blocks.{i}."
        h = ln(t, b + "norm1")
        qkv = F.linear(h, s[P + b + "attn.qkv.weight"], s[P + b + "attn.qkv.bias"])
        q, k, v = qkv.reshape(B, -1, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-1, -2)) / math.sqrt(dim // heads)).softmax(-1) @ v
        a = F.linear(
            a.transpose(1, 2).reshape(B, -1, dim),
            s[P + b + "attn.proj.weight"],
            s[P + b + "attn.proj.bias"],
        )
        t = t + s[P + b + "ls1.gamma"] * a
        h = F.gelu(
            F.linear(ln(t, b + "norm2"), s[P + b + "mlp.fc1.weight"], s[P + b + "mlp.fc1.bias"])
        )
        t = t + s[P + b + "ls2.gamma"] * F.linear(
            h, s[P + b + "mlp.fc2.weight"], s[P + b + "mlp.fc2.bias"]
        )
        if i in taps:
            outs.append(ln(t, "norm")[:, 1:])
    return outs


@pytest.mark.parametrize("size", [(16, 16), (12, 20)])  # the training grid, and interpolated
def test_loader_matches_an_independent_dinov2_forward(size):
    state = _official_state()
    model = load_official(state, n_heads=2)
    x = torch.randn(2, 3, *size)
    taps = model.config.taps
    ref = _reference_tokens(state, x, taps, heads=2)
    ours = model.pretrained.intermediate_layers(x, taps)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # the head's keys are copied: its output from the reference tokens is the model's output
    head = model.depth_head(ref, size[0] // 4, size[1] // 4, 4)
    torch.testing.assert_close(model(x), F.relu(head).squeeze(1), atol=1e-5, rtol=1e-4)


def test_convert_checkpoint_round_trips_through_safetensors(tmp_path):
    state = _official_state(seed=1)
    src = tmp_path / "depth_anything_v2_tiny.pth"
    torch.save(state, src)
    dst = convert_checkpoint(src, tmp_path / "tiny.safetensors", n_heads=2)
    loaded = load_depth_model(dst)
    direct = load_official(state, n_heads=2)
    x = torch.randn(1, 3, 16, 24)
    torch.testing.assert_close(loaded(x), direct(x))
    assert loaded.config.taps == direct.config.taps == (0, 1, 2, 3)


def test_wrong_layout_is_one_value_error(tmp_path):
    other = {"encoder.weight": torch.zeros(2, 2)}
    with pytest.raises(ValueError, match="official Depth Anything V2"):
        config_from_state_dict(other)
    src = tmp_path / "other.pth"
    torch.save(other, src)
    with pytest.raises(ValueError, match="official Depth Anything V2"):
        convert_checkpoint(src, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_official_vits_config_and_dpt_shapes():
    cfg = DepthConfig.preset("vits")
    assert (cfg.dim, cfg.depth, cfg.taps, cfg.features) == (384, 12, (2, 5, 8, 11), 64)
    assert cfg.out_channels == (48, 96, 192, 384)
    assert DepthConfig.preset("vitl").taps == (4, 11, 17, 23)
    # the S head (official widths) on S-sized tokens
    small = DepthConfig(dim=384, depth=12, n_heads=6, features=64, out_channels=(48, 96, 192, 384))
    model = DepthAnythingV2(small)
    grid_h, grid_w = 3, 5
    tokens = [torch.randn(1, grid_h * grid_w, 384) for _ in range(4)]
    maps = [
        resize(project(t.transpose(1, 2).reshape(1, 384, grid_h, grid_w)))
        for t, project, resize in zip(
            tokens, model.depth_head.projects, model.depth_head.resize_layers, strict=True
        )
    ]
    assert [tuple(m.shape[1:]) for m in maps] == [
        (48, 12, 20),
        (96, 6, 10),
        (192, 3, 5),
        (384, 2, 3),
    ]
    out = model.depth_head(tokens, grid_h, grid_w, 14)
    assert out.shape == (1, 1, 42, 70) and (out >= 0).all()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(24.8e6, rel=0.01)


def test_bad_image_shape_names_the_argument():
    model = DepthAnythingV2(
        DepthConfig(
            image_size=16,
            patch_size=4,
            dim=16,
            depth=4,
            n_heads=2,
            taps=(0, 1, 2, 3),
            features=8,
            out_channels=(4, 4, 4, 4),
        )
    )
    with pytest.raises(ValueError, match="images"):
        model(torch.randn(1, 3, 15, 16))
    with pytest.raises(ValueError, match="taps"):
        DepthConfig(depth=4, taps=(0, 1, 2, 4))
