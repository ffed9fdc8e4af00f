"""LlamaGen's image tokenizer (Sec. 2.1): a VQGAN-style conv encoder, a vector quantiser with
l2-normalised low-dimensional codes, and a mirrored conv decoder.

    encoder: conv_in -> [ResBlock x num_res_blocks, stride-2 conv] per level -> mid (ResBlock,
             self-attention, ResBlock) -> GroupNorm, SiLU, conv_out -> quant_conv (1x1 to the
             codebook dim)
    quantiser: paperlab.core.vq.VectorQuantizer (cosine lookup when l2_norm; Sec. 2.1 "the
             codebook vectors are l2-normalised, low dimension 8")
    decoder: post_quant_conv (1x1) -> conv_in -> mid -> [ResBlock x (num_res_blocks + 1),
             nearest upsample + conv] per level -> GroupNorm, SiLU, conv_out

Images are (B, C, H, W) in [0, 1]; the networks work in [-1, 1]. The token grid is
(H / downsample, W / downsample) with downsample = 2 ** (len(channel_mult) - 1).
Plain VQ (the baseline of claim 1) is this class with `l2_norm=False, codebook_dim=64`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.checkpoint import checkpoint_file, load_model, save_model
from paperlab.core.vq import VectorQuantizer, VQOutput

KIND = "VQTokenizer"  # the checkpoint kind save_pretrained writes and from_pretrained checks


@dataclass
class VQTokenizerConfig:
    in_channels: int = 3
    channels: int = 32  # base width (paper: 128)
    channel_mult: tuple[int, ...] = (1, 2)  # one level per resolution (paper: 1,1,2,2,4 -> f16)
    num_res_blocks: int = 1  # per encoder level (paper: 2); the decoder has one more
    z_channels: int = 64  # encoder output before quant_conv (paper: 256)
    codebook_size: int = 512  # paper: 16384
    codebook_dim: int = 8  # paper: 8
    l2_norm: bool = True  # paper: True (cosine lookup)
    beta: float = 0.25  # commitment weight (paper: 0.25)
    norm_groups: int = 8  # GroupNorm groups (DEVIATION: paper 32, at >= 128 channels)
    mid_attention: bool = True  # self-attention in the middle blocks (as the official VQGAN)

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError("VQTokenizerConfig.channel_mult: need >= 1 level of positive ints")
        widths = [self.channels * m for m in self.channel_mult] + [self.channels]
        if any(w % self.norm_groups for w in widths):
            raise ValueError(
                f"VQTokenizerConfig: every width {sorted(set(widths))} must be divisible by "
                f"norm_groups={self.norm_groups}"
            )
        if min(self.codebook_size, self.codebook_dim, self.z_channels, self.num_res_blocks) < 1:
            raise ValueError("VQTokenizerConfig: sizes must be >= 1")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @classmethod
    def from_dict(cls, d: dict) -> VQTokenizerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"VQTokenizerConfig: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)


# ---------------------------------------------------------------------------------------------
# Building blocks (taming-transformers / LlamaGen naming)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3, twice, plus a (1x1 if the width changes) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=1e-6)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=1e-6)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the spatial positions (the VQGAN middle block)."""

    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]  # (B, HW, C)
        return x + self.proj_out(h.transpose(1, 2).reshape(B, C, H, W))


class Downsample(nn.Module):
    """Stride-2 3x3 conv with the asymmetric (0, 1, 0, 1) padding of the official code."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _middle(ch: int, cfg: VQTokenizerConfig) -> nn.Sequential:
    attn = AttnBlock(ch, cfg.norm_groups) if cfg.mid_attention else nn.Identity()
    return nn.Sequential(ResBlock(ch, ch, cfg.norm_groups), attn, ResBlock(ch, ch, cfg.norm_groups))


class Encoder(nn.Module):
    def __init__(self, cfg: VQTokenizerConfig):
        super().__init__()
        g, ch = cfg.norm_groups, cfg.channels
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        blocks: list[nn.Module] = []
        block_in = ch
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(block_in, ch * mult, g))
                block_in = ch * mult
            if level != len(cfg.channel_mult) - 1:
                blocks.append(Downsample(block_in))
        self.down = nn.Sequential(*blocks)
        self.mid = _middle(block_in, cfg)
        self.norm_out = nn.GroupNorm(g, block_in, eps=1e-6)
        self.conv_out = nn.Conv2d(block_in, cfg.z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.mid(self.down(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, z_channels, h, w)


class Decoder(nn.Module):
    def __init__(self, cfg: VQTokenizerConfig):
        super().__init__()
        g, ch = cfg.norm_groups, cfg.channels
        block_in = ch * cfg.channel_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, padding=1)
        self.mid = _middle(block_in, cfg)
        blocks: list[nn.Module] = []
        for level in reversed(range(len(cfg.channel_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock(block_in, ch * cfg.channel_mult[level], g))
                block_in = ch * cfg.channel_mult[level]
            if level != 0:
                blocks.append(Upsample(block_in))
        self.up = nn.Sequential(*blocks)
        self.norm_out = nn.GroupNorm(g, block_in, eps=1e-6)
        self.conv_out = nn.Conv2d(block_in, cfg.in_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.up(self.mid(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))


# ---------------------------------------------------------------------------------------------
# The tokenizer


class VQTokenizer(nn.Module):
    """images (B, C, H, W) in [0, 1] <-> token indices (B, H/f, W/f)."""

    def __init__(self, *, config: VQTokenizerConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = VQTokenizerConfig(**overrides)
        elif overrides:
            raise ValueError("VQTokenizer: pass either config= or keyword overrides, not both")
        self.config = config
        self.encoder = Encoder(config)
        self.quant_conv = nn.Conv2d(config.z_channels, config.codebook_dim, 1)
        self.quantize = VectorQuantizer(
            codebook_size=config.codebook_size,
            dim=config.codebook_dim,
            l2_norm=config.l2_norm,
            beta=config.beta,
        )
        self.post_quant_conv = nn.Conv2d(config.codebook_dim, config.z_channels, 1)
        self.decoder = Decoder(config)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def grid_size(self, image_size: int) -> int:
        """Tokens per side for `image_size`-pixel images."""
        return image_size // self.config.downsample

    def _check(self, images: Tensor) -> None:
        f, c = self.config.downsample, self.config.in_channels
        if (
            not isinstance(images, Tensor)
            or images.dim() != 4
            or images.shape[1] != c
            or images.shape[-1] % f
            or images.shape[-2] % f
        ):
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(
                f"VQTokenizer: images must be (B, {c}, H, W) with H and W divisible by {f}, "
                f"got {shape}"
            )
        if not images.is_floating_point():
            raise ValueError(
                f"VQTokenizer: images must be floats in [0, 1], got {images.dtype} "
                "(uint8 pixels: divide by 255)"
            )
        low, high = float(images.min()), float(images.max())
        if not (-1e-3 <= low and high <= 1.0 + 1e-3):  # NaN fails this too
            raise ValueError(
                f"VQTokenizer: images must be in [0, 1], got values in [{low:.3g}, {high:.3g}]"
            )

    def quantize_images(self, images: Tensor) -> VQOutput:
        """Encoder + quant_conv + VQ; `quantized` is (B, h, w, D), channel-last."""
        self._check(images)
        z = self.quant_conv(self.encoder(images * 2.0 - 1.0))  # Sec. 2.1: [-1, 1] pixels
        return self.quantize(z.permute(0, 2, 3, 1))

    def decode_latents(self, quantized: Tensor) -> Tensor:
        """(B, h, w, D) codes -> images in [0, 1] (not clamped)."""
        x = self.decoder(self.post_quant_conv(quantized.permute(0, 3, 1, 2)))
        return (x + 1.0) / 2.0

    def forward(self, images: Tensor) -> tuple[Tensor, VQOutput]:
        """(reconstruction in [0, 1] space (not clamped), VQOutput)."""
        vq = self.quantize_images(images)
        return self.decode_latents(vq.quantized), vq

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> indices (B, h, w) int64."""
        return self.quantize_images(images).indices

    @torch.no_grad()
    def decode_indices(self, indices: Tensor) -> Tensor:
        """(B, h, w) (or (B, h*w) for a square grid) -> images (B, C, H, W) clamped to [0, 1]."""
        if indices.dim() == 2:
            side = int(round(indices.shape[1] ** 0.5))
            if side * side != indices.shape[1]:
                raise ValueError(f"decode_indices: {indices.shape[1]} tokens is not a square grid")
            indices = indices.view(-1, side, side)
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(
                f"decode_indices: code ids must be in [0, {self.codebook_size}), got "
                f"[{int(indices.min())}, {int(indices.max())}]"
            )
        return self.decode_latents(self.quantize.lookup(indices)).clamp(0.0, 1.0)

    # -- checkpoints: one safetensors file, the config in its metadata -----------------------

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write `path` (a `.safetensors` file, or a directory -> `tokenizer.safetensors`)."""
        file = checkpoint_file(path, "tokenizer.safetensors")
        return save_model(file, self, kind=KIND, config=asdict(self.config))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str = "cpu") -> VQTokenizer:
        file = checkpoint_file(path, "tokenizer.safetensors")
        build = lambda config: cls(config=VQTokenizerConfig.from_dict(config))  # noqa: E731
        model, _ = load_model(file, build, kind=KIND, map_location=device)
        return model


def tokenizer_loss(model: VQTokenizer, images: Tensor) -> tuple[Tensor, dict[str, float]]:
    """Reconstruction L2 (in [-1, 1] pixels, as the official code) + VQ loss (codebook +
    beta * commitment). DEVIATION: the paper adds LPIPS (weight 1) and a PatchGAN adversarial
    loss (weight 0.5); there is no pretrained VGG here (no downloads), so both are dropped."""
    recon, vq = model(images)
    rec_loss = F.mse_loss(recon * 2.0 - 1.0, images * 2.0 - 1.0)
    loss = rec_loss + vq.loss
    return loss, {"rec_loss": rec_loss.item(), "vq_loss": vq.loss.item()}
