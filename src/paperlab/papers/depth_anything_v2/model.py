"""Depth Anything V2's network: a ViT encoder (``core.vit``) tapped at four layers + a DPT head.

The model (Sec. 4 and the official ``dpt.py``): a DINOv2 ViT reads the image in p x p patches;
the token states after four intermediate blocks (S/B [2, 5, 8, 11], L [4, 11, 17, 23],
G [9, 19, 29, 39]), each passed through the encoder's final LayerNorm and with the class token
dropped, are reshaped to (B, D, H/p, W/p) maps. The DPT head (Ranftl et al. 2021) projects each
with a 1x1 conv, resizes them to x4 / x2 / x1 / x1/2 of the token grid (two transposed convs,
identity, a stride-2 conv), maps each to ``features`` channels with a 3x3 conv, and fuses them
coarse-to-fine with four fusion blocks (residual conv units, bilinear x2 upsampling with
align_corners=True, a 1x1 conv). Output convs end in a ReLU: the map is **relative inverse
depth (disparity)**, larger = closer, known up to an unknown scale and shift.

    model = DepthAnythingV2(DepthConfig.preset("vits"))    # the official S layout (25M params)
    disparity = model(images)        # (B, 3, H, W) -> (B, H, W); H, W multiples of 14

Module names follow the official checkpoint under ``depth_head.*`` one-to-one, so
:mod:`~paperlab.papers.depth_anything_v2.official` only has to convert ``pretrained.*``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.vit import ViT, patchify

# The official intermediate layers per encoder size (dpt.py, intermediate_layer_idx).
OFFICIAL_TAPS: dict[str, tuple[int, ...]] = {
    "vits": (2, 5, 8, 11),
    "vitb": (2, 5, 8, 11),
    "vitl": (4, 11, 17, 23),
    "vitg": (9, 19, 29, 39),
}


def default_taps(depth: int) -> tuple[int, ...]:
    """Four taps spread evenly and ending at the last block (depth 12 gives S/B's [2, 5, 8, 11])."""
    if depth < 4:
        raise ValueError(f"depth={depth}: the DPT head needs at least 4 blocks to tap")
    return tuple(max(k, round(depth * (k + 1) / 4) - 1) for k in range(4))


@dataclass
class DepthConfig:
    """Encoder + head sizes. ``image_size`` is the square size the position embedding was
    learned at (518 for the official models: a 37x37 grid); other sizes interpolate it."""

    image_size: int = 518
    patch_size: int = 14
    dim: int = 384
    depth: int = 12
    n_heads: int = 6
    mlp_ratio: float = 4.0
    taps: tuple[int, ...] = (2, 5, 8, 11)
    features: int = 64
    out_channels: tuple[int, ...] = (48, 96, 192, 384)
    head_features_2: int = 32  # the last 3x3 conv's width (32 in every official config)
    layer_norm_eps: float = 1e-6  # DINOv2's LayerNorm

    def __post_init__(self) -> None:
        self.taps = tuple(int(t) for t in self.taps)
        self.out_channels = tuple(int(c) for c in self.out_channels)
        if self.patch_size < 1 or self.image_size % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}"
            )
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} must be divisible by n_heads={self.n_heads}")
        if len(self.taps) != 4 or sorted(set(self.taps)) != list(self.taps):
            raise ValueError(f"taps={self.taps}: four increasing block indices please")
        if self.taps[0] < 0 or self.taps[-1] >= self.depth:
            raise ValueError(f"taps={self.taps}: indices must lie in [0, depth={self.depth})")
        if len(self.out_channels) != 4 or min(self.out_channels) < 1:
            raise ValueError(f"out_channels={self.out_channels}: four positive widths please")
        if self.features < 2:
            raise ValueError(f"features={self.features} must be >= 2")

    @staticmethod
    def preset(name: str) -> DepthConfig:
        """The official configs: ``vits`` / ``vitb`` / ``vitl`` (``vitg`` uses a SwiGLU MLP,
        which the core ViT has not: its sizes are listed but it cannot be built here)."""
        sizes = {
            "vits": dict(
                dim=384, depth=12, n_heads=6, features=64, out_channels=(48, 96, 192, 384)
            ),
            "vitb": dict(
                dim=768, depth=12, n_heads=12, features=128, out_channels=(96, 192, 384, 768)
            ),
            "vitl": dict(
                dim=1024, depth=24, n_heads=16, features=256, out_channels=(256, 512, 1024, 1024)
            ),
        }
        if name not in sizes:
            raise ValueError(f"encoder={name!r}: choose one of {sorted(sizes)}")
        return DepthConfig(taps=OFFICIAL_TAPS[name], **sizes[name])  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["taps"], d["out_channels"] = list(self.taps), list(self.out_channels)
        return d


# ---------------------------------------------------------------------------------------------
# Encoder: the core ViT, read at any image size, tapped at four blocks


class ViTEncoder(nn.Module):
    """``core.vit.ViT`` (learned positions, a class token) used as DINOv2 is in DPT: the patch
    grid may differ from the training one (positions interpolated bicubically as DINOv2's
    ``interpolate_pos_encoding``, offset 0.1, no antialias), and
    :meth:`intermediate_layers` returns the normed patch tokens after the tapped blocks."""

    def __init__(self, cfg: DepthConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.vit = ViT(
            image_size=cfg.image_size,
            patch_size=cfg.patch_size,
            in_channels=3,
            num_classes=1,
            dim=cfg.dim,
            depth=cfg.depth,
            n_heads=cfg.n_heads,
            mlp_ratio=cfg.mlp_ratio,
            pos_embed="learned",
            pool="cls",
        )
        self.vit.head = nn.Identity()  # no classifier: the DPT head reads the tokens
        # DEVIATION: no LayerScale and no stochastic depth in the blocks (core.vit's Block);
        # official weights load exactly (official.py folds LayerScale into the Linears), but
        # models trained here from scratch train without them.
        for m in self.vit.modules():
            if isinstance(m, nn.LayerNorm):
                m.eps = cfg.layer_norm_eps

    def position_embedding(self, grid_h: int, grid_w: int) -> Tensor:
        """(1, 1 + grid_h * grid_w, D): the class position and the patch grid resized."""
        pos = self.vit.pos_embed
        n = pos.shape[1] - 1
        side = math.isqrt(n)
        if grid_h == grid_w == side:
            return pos
        patch = pos[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
        # DINOv2: scale_factor (not size) with +0.1 against floating-point floor errors
        scale = ((grid_h + 0.1) / side, (grid_w + 0.1) / side)
        patch = F.interpolate(patch, scale_factor=scale, mode="bicubic", antialias=False)
        patch = patch.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([pos[:, :1], patch.to(pos.dtype)], dim=1)

    def intermediate_layers(self, images: Tensor, taps: tuple[int, ...]) -> list[Tensor]:
        """Per tap, (B, N, D) patch tokens after that block and the final LayerNorm."""
        B, _, H, W = images.shape
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f"images: height {H} and width {W} must be multiples of {p}")
        x = self.vit.patch_embed.proj(patchify(images, p))  # (B, N, D)
        x = torch.cat([self.vit.cls_token.expand(B, -1, -1), x], dim=1)
        x = x + self.position_embedding(H // p, W // p)
        outs = []
        for i, block in enumerate(self.vit.transformer.blocks):
            x = block(x)
            if i in taps:
                outs.append(self.vit.transformer.norm(x)[:, 1:])  # class token dropped
            if i == taps[-1]:
                break
        return outs


# ---------------------------------------------------------------------------------------------
# DPT head (names as the official module tree: projects, resize_layers, scratch.*)


class ResidualConvUnit(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus the input (no BatchNorm: use_bn=False)."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusionBlock(nn.Module):
    """Fuse a coarser path with a skip map: path + rcu1(skip) -> rcu2 -> bilinear resize
    (to ``size``, or x2) with align_corners=True -> 1x1 conv."""

    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)  # official spelling
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: Tensor, skip: Tensor | None = None, size: Any = None) -> Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """Four token maps -> one (B, 1, H, W) non-negative map (ReLU output)."""

    def __init__(
        self,
        *,
        in_channels: int,
        features: int,
        out_channels: tuple[int, ...],
        head_features_2: int = 32,
    ):
        super().__init__()
        c = out_channels
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, ch, 1) for ch in c)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c[0], c[0], kernel_size=4, stride=4),  # x4
                nn.ConvTranspose2d(c[1], c[1], kernel_size=2, stride=2),  # x2
                nn.Identity(),
                nn.Conv2d(c[3], c[3], kernel_size=3, stride=2, padding=1),  # x1/2
            ]
        )
        self.scratch = nn.Module()
        for i, ch in enumerate(c, start=1):
            setattr(self.scratch, f"layer{i}_rn", nn.Conv2d(ch, features, 3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(self.scratch, f"refinenet{i}", FeatureFusionBlock(features))
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, head_features_2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(head_features_2, 1, 1),
            nn.ReLU(),
        )
        # A positive start for the last bias: from scratch (no pretrained weights, unlike the
        # paper) a final ReLU that starts negative everywhere never gets a gradient.
        nn.init.constant_(self.scratch.output_conv2[2].bias, 1.0)

    def forward(
        self, tokens: list[Tensor], grid_h: int, grid_w: int, patch_size: int, relu: bool = True
    ) -> Tensor:
        maps = []
        for x, project, resize in zip(tokens, self.projects, self.resize_layers, strict=True):
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[-1], grid_h, grid_w)
            maps.append(resize(project(x)))
        s = self.scratch
        l1, l2, l3, l4 = (getattr(s, f"layer{i}_rn")(m) for i, m in enumerate(maps, start=1))
        path = s.refinenet4(l4, size=l3.shape[2:])
        path = s.refinenet3(path, l3, size=l2.shape[2:])
        path = s.refinenet2(path, l2, size=l1.shape[2:])
        path = s.refinenet1(path, l1)  # x2: 8x the token grid
        out = s.output_conv1(path)
        out = F.interpolate(
            out, (grid_h * patch_size, grid_w * patch_size), mode="bilinear", align_corners=True
        )
        out = s.output_conv2[:3](out)
        return s.output_conv2[3](out) if relu else out


class DepthAnythingV2(nn.Module):
    """ViT encoder + DPT head; ``forward(images) -> (B, H, W)`` relative **disparity** (inverse
    depth up to scale and shift; larger = closer). ``images`` are ImageNet-normalised RGB with
    sides a multiple of the patch size (see :mod:`~paperlab.papers.depth_anything_v2.transform`)."""

    def __init__(self, cfg: DepthConfig | None = None, **overrides: Any):
        super().__init__()
        cfg = DepthConfig(**overrides) if cfg is None else cfg
        self.config = cfg
        self.pretrained = ViTEncoder(cfg)  # official attribute names
        self.depth_head = DPTHead(
            in_channels=cfg.dim,
            features=cfg.features,
            out_channels=cfg.out_channels,
            head_features_2=cfg.head_features_2,
        )

    def forward(self, images: Tensor, *, relu: bool = True) -> Tensor:
        """``relu=False`` returns the map before the final ReLU (used in training, see
        ``pipeline.train_depth``); the ReLU only clips, so orderings above 0 are the same."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected (B, 3, H, W), got {tuple(images.shape)}")
        p = self.config.patch_size
        grid_h, grid_w = images.shape[-2] // p, images.shape[-1] // p
        tokens = self.pretrained.intermediate_layers(images, self.config.taps)
        disparity = self.depth_head(tokens, grid_h, grid_w, p, relu=relu)
        return (F.relu(disparity) if relu else disparity).squeeze(1)  # (B, H, W)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def small_config(
    *, image_size: int, patch_size: int, dim: int, depth: int, n_heads: int, features: int
) -> DepthConfig:
    """A miniature :class:`DepthConfig`: taps spread as the official ones, head widths scaled
    from ``features`` as in the S config (out_channels = features x [3/4, 3/2, 3, 6], capped)."""
    out = tuple(max(4, min(dim, features * k // 4)) for k in (3, 6, 12, 24))
    return DepthConfig(
        image_size=image_size,
        patch_size=patch_size,
        dim=dim,
        depth=depth,
        n_heads=n_heads,
        taps=default_taps(depth),
        features=features,
        out_channels=out,
        # DEVIATION: the last conv is features // 2 wide (min 8), not 32: the miniature heads
        # are 16-32 features wide, and a 32-wide conv at full resolution would dominate their cost.
        head_features_2=max(8, features // 2),
    )
