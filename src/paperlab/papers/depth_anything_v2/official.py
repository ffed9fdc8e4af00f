"""Load the official Depth Anything V2 checkpoints (``depth_anything_v2_vit{s,b,l}.pth``).

The official state dict has two parts:

- ``depth_head.*``: our :class:`~paperlab.papers.depth_anything_v2.model.DPTHead` uses the same
  module names, so these keys are copied unchanged;
- ``pretrained.*``: DINOv2 (``cls_token``, ``pos_embed`` (1, 1 + 37*37, D), ``mask_token``,
  ``patch_embed.proj`` a p x p conv, ``blocks.i.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2,
  mlp.fc1, mlp.fc2, ls2.gamma}``, ``norm``). Mapped into ``core.vit.ViT``: the patch conv
  becomes the equivalent Linear over ``patchify``'s (p, p, C) order, and each LayerScale
  ``gamma`` is folded into the Linear before it (gamma * (W x + b) = (gamma W) x + gamma b),
  exactly. ``mask_token`` (masked-image pre-training only) is dropped.

    cfg, state = convert_state_dict(torch.load("depth_anything_v2_vits.pth", weights_only=True))
    convert_checkpoint("depth_anything_v2_vits.pth", "vits.safetensors")   # then load_depth_model
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from paperlab.papers.depth_anything_v2.model import (
    OFFICIAL_TAPS,
    DepthAnythingV2,
    DepthConfig,
    default_taps,
)

_ENCODER_BY_DIM = {384: "vits", 768: "vitb", 1024: "vitl", 1536: "vitg"}
_HEAD_DIM = 64  # every DINOv2 size has 64-dim heads (384/6, 768/12, 1024/16, 1536/24)


def is_official_layout(state: Mapping[str, Tensor]) -> bool:
    return any(k.startswith("pretrained.") for k in state) and any(
        k.startswith("depth_head.") for k in state
    )


def config_from_state_dict(
    state: Mapping[str, Tensor], *, n_heads: int | None = None, taps: tuple[int, ...] | None = None
) -> DepthConfig:
    """The :class:`DepthConfig` an official state dict implies. The number of heads and the taps
    are not in the weights: by default heads of 64 dims and the official taps for the encoder
    of that width (else taps spread evenly)."""
    if not is_official_layout(state):
        raise ValueError(
            "state: not the official Depth Anything V2 layout (expected pretrained.* and "
            "depth_head.* keys)"
        )
    if any(".mlp.w12." in k for k in state):
        raise ValueError("state: a SwiGLU encoder (vitg); only vits/vitb/vitl are supported")
    dim = state["pretrained.cls_token"].shape[-1]
    patch = state["pretrained.patch_embed.proj.weight"].shape[-1]
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"pretrained\.blocks\.(\d+)\.", k))}
    depth = max(blocks) + 1
    grid = math.isqrt(state["pretrained.pos_embed"].shape[1] - 1)
    name = _ENCODER_BY_DIM.get(dim)
    if taps is None:
        official = OFFICIAL_TAPS.get(name) if name else None
        taps = official if official and depth > max(official) else default_taps(depth)
    hidden = state["pretrained.blocks.0.mlp.fc1.weight"].shape[0]
    return DepthConfig(
        image_size=grid * patch,
        patch_size=patch,
        dim=dim,
        depth=depth,
        n_heads=n_heads or max(1, dim // _HEAD_DIM),
        mlp_ratio=hidden / dim,
        taps=tuple(taps),
        features=state["depth_head.scratch.layer1_rn.weight"].shape[0],
        out_channels=tuple(state[f"depth_head.projects.{i}.weight"].shape[0] for i in range(4)),
        head_features_2=state["depth_head.scratch.output_conv2.0.weight"].shape[0],
    )


def convert_state_dict(
    state: Mapping[str, Tensor], *, n_heads: int | None = None, taps: tuple[int, ...] | None = None
) -> tuple[DepthConfig, dict[str, Tensor]]:
    """(config, our state dict) from an official one; see the module docstring."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    cfg = config_from_state_dict(state, n_heads=n_heads, taps=taps)
    out: dict[str, Tensor] = {k: v for k, v in state.items() if k.startswith("depth_head.")}
    src, dst = "pretrained.", "pretrained.vit."
    out[dst + "cls_token"] = state[src + "cls_token"]
    out[dst + "pos_embed"] = state[src + "pos_embed"]
    conv = state[src + "patch_embed.proj.weight"]  # (D, C, p, p)
    out[dst + "patch_embed.proj.weight"] = conv.permute(0, 2, 3, 1).reshape(conv.shape[0], -1)
    out[dst + "patch_embed.proj.bias"] = state[src + "patch_embed.proj.bias"]
    for i in range(cfg.depth):
        b, o = f"{src}blocks.{i}.", f"{dst}transformer.blocks.{i}."
        for name in ("norm1", "norm2", "attn.qkv", "mlp.fc1"):
            out[o + name + ".weight"] = state[b + name + ".weight"]
            out[o + name + ".bias"] = state[b + name + ".bias"]
        for linear, scale in (("attn.proj", "ls1.gamma"), ("mlp.fc2", "ls2.gamma")):
            gamma = state.get(b + scale)
            gamma = torch.ones(cfg.dim) if gamma is None else gamma.float()
            out[o + linear + ".weight"] = state[b + linear + ".weight"] * gamma[:, None]
            out[o + linear + ".bias"] = state[b + linear + ".bias"] * gamma
    out[dst + "transformer.norm.weight"] = state[src + "norm.weight"]
    out[dst + "transformer.norm.bias"] = state[src + "norm.bias"]
    return cfg, {k: v.float().contiguous() for k, v in out.items()}


def load_official(
    state: Mapping[str, Tensor], *, n_heads: int | None = None, taps: tuple[int, ...] | None = None
) -> DepthAnythingV2:
    """A :class:`DepthAnythingV2` (eval mode) with an official state dict's weights."""
    cfg, ours = convert_state_dict(state, n_heads=n_heads, taps=taps)
    model = DepthAnythingV2(cfg)
    missing, unexpected = model.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"state: does not fit the {cfg.dim}-dim model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    return model.eval()


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a ``.pth`` (``torch.load(weights_only=True)``) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file, one line for the user
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: not a state dict")
    return dict(state)


def convert_checkpoint(src: str | Path, dst: str | Path, *, n_heads: int | None = None) -> Path:
    """Convert an official checkpoint file to a paperlab safetensors checkpoint (load it with
    ``pipeline.load_depth_model``). Raises ValueError for any other layout."""
    from paperlab.papers.depth_anything_v2.pipeline import save_depth_model

    state = read_state_dict(src)
    if not is_official_layout(state):
        raise ValueError(
            f"{src}: not an official Depth Anything V2 checkpoint (expected pretrained.* and "
            "depth_head.* keys)"
        )
    model = load_official(state, n_heads=n_heads)
    return save_depth_model(dst, model, converted_from=Path(src).name)
