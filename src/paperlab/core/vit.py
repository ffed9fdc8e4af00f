"""Vision Transformer encoder blocks and a small ViT classifier.

ViT (Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words", arXiv 2010.11929): the image
is cut into non-overlapping p x p patches, each flattened and linearly projected (Eq. 1), a
learnable [class] token is prepended, position embeddings are added, and a stack of pre-norm
transformer blocks (Eq. 2-3) runs over the tokens; the class token's final state (or the mean of
the patch tokens) after a LayerNorm feeds a linear head (Eq. 4). The fixed 2D sin-cos position
embedding is the one of MAE (He et al. 2021, "Masked Autoencoders Are Scalable Vision
Learners", arXiv 2111.06377). ``patch_size=1`` gives one token per pixel (PiT).

    x = patchify(images, 4)            # (B, C, H, W) -> (B, N, 4*4*C)
    images == unpatchify(x, 4, C)
    vit = ViT(image_size=16, patch_size=4, in_channels=3, num_classes=10)
    logits = vit(images)               # (B, 10)
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) -> (B, N, p*p*C): patches in row-major order, each flattened as (p, p, C)."""
    if images.ndim != 4:
        raise ValueError(f"patchify: images must be (B, C, H, W), got shape {tuple(images.shape)}")
    B, C, H, W = images.shape
    p = patch_size
    if p < 1 or H % p or W % p:
        raise ValueError(
            f"patchify: image size {H}x{W} is not divisible by patch size {p}; "
            "choose a patch size that divides the image size"
        )
    h, w = H // p, W // p
    x = images.reshape(B, C, h, p, w, p).permute(0, 2, 4, 3, 5, 1)  # (B, h, w, p, p, C)
    return x.reshape(B, h * w, p * p * C)


def unpatchify(tokens: Tensor, patch_size: int, channels: int) -> Tensor:
    """(B, N, p*p*C) -> (B, C, H, W) with N a square number; the exact inverse of ``patchify``."""
    if tokens.ndim != 3:
        raise ValueError(f"unpatchify: tokens must be (B, N, L), got shape {tuple(tokens.shape)}")
    B, N, L = tokens.shape
    p = patch_size
    if L != p * p * channels:
        raise ValueError(
            f"unpatchify: token length {L} != patch_size**2 * channels = {p * p * channels}"
        )
    h = math.isqrt(N)
    if h * h != N:
        raise ValueError(f"unpatchify: {N} tokens is not a square grid of patches")
    x = tokens.reshape(B, h, h, p, p, channels).permute(0, 5, 1, 3, 2, 4)  # (B, C, h, p, w, p)
    return x.reshape(B, channels, h * p, h * p)


def _sincos_1d(positions: Tensor, dim: int) -> Tensor:
    """(M,) positions -> (M, dim): [sin(pos * w), cos(pos * w)], w_i = 1/10000^(2i/dim)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_position_embedding(grid_size: int, dim: int) -> Tensor:
    """(grid_size**2, dim) fixed 2D sin-cos embedding of MAE, in row-major patch order.

    As in MAE's ``get_2d_sincos_pos_embed``: the first dim/2 channels encode the column (x), the
    last dim/2 the row (y), each as [sin, cos] with omega_i = 1/10000^(i/(dim/4)).
    """
    if dim % 4:
        raise ValueError(f"sincos_position_embedding: dim={dim} must be divisible by 4")
    if grid_size < 1:
        raise ValueError(f"sincos_position_embedding: grid_size={grid_size} must be >= 1")
    coords = torch.arange(grid_size)
    rows = coords.repeat_interleave(grid_size)  # row-major: row changes slowest
    cols = coords.repeat(grid_size)
    emb = torch.cat([_sincos_1d(cols, dim // 2), _sincos_1d(rows, dim // 2)], dim=1)
    return emb.float()


def init_weights(module: nn.Module) -> None:
    """ViT/MAE habit: Linear weights trunc-normal(std 0.02), biases 0; LayerNorm ones/zeros.
    Use as ``model.apply(init_weights)``."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class PatchEmbed(nn.Module):
    """Linear projection of flattened patches (Eq. 1): ``proj(patchify(images))``; equivalent to
    a Conv2d with kernel = stride = patch_size."""

    def __init__(self, *, image_size: int, patch_size: int, in_channels: int, dim: int):
        super().__init__()
        if patch_size < 1 or image_size % patch_size:
            raise ValueError(
                f"PatchEmbed: image size {image_size} is not divisible by patch size "
                f"{patch_size}; choose a patch size that divides the image size"
            )
        self.image_size = image_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2
        self.proj = nn.Linear(patch_size * patch_size * in_channels, dim)

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1:] != (
            self.in_channels,
            self.image_size,
            self.image_size,
        ):
            raise ValueError(
                f"PatchEmbed: expected images (B, {self.in_channels}, {self.image_size}, "
                f"{self.image_size}), got {tuple(images.shape)}"
            )
        return self.proj(patchify(images, self.patch_size))  # (B, N, dim)


class Attention(nn.Module):
    """Bidirectional multi-head self-attention. ``attn_mask`` follows
    ``F.scaled_dot_product_attention``: bool (True = may attend) or float (added to the scores),
    broadcastable to (B, n_heads, T, T). A query row with every key masked gives NaN.

    ``dropout`` acts after the output projection (ViT App. B.1: after every dense layer except
    the qkv projection); ``attn_dropout`` on the attention weights is off by default, as there.
    """

    def __init__(self, *, dim: int, n_heads: int, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"Attention: dim={dim} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_dropout if self.training else 0.0
        )  # (B, H, T, Dh)
        out = out.transpose(1, 2).reshape(B, T, C)
        return self.proj_drop(self.proj(out))


class MLP(nn.Module):
    """Two-layer GELU MLP of the transformer block (ViT Sec. 3.1)."""

    def __init__(self, *, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block (Eq. 2-3): x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, *, dim: int, n_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim=dim, n_heads=n_heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim=dim, hidden=int(dim * mlp_ratio), dropout=dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """``depth`` pre-norm blocks and a final LayerNorm ``norm``: (B, T, dim) -> (B, T, dim)."""

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        n_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(dim=dim, n_heads=n_heads, mlp_ratio=mlp_ratio, dropout=dropout)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.norm(x)


class ViT(nn.Module):
    """ViT image classifier.

    ``pos_embed``: "learned" is one trainable vector per token, the class token included (ViT
    Eq. 1, E_pos of size (N+1) x D; trunc-normal std 0.02); "sincos" is the fixed MAE embedding
    on the patch tokens only (the class token gets none, i.e. zeros, as in MAE); "none" adds
    nothing. ``pool``: "cls" reads the prepended class token, "mean" averages the patch tokens
    (no class token is then created). Both pool after the final LayerNorm.
    """

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int,
        in_channels: int,
        num_classes: int,
        dim: int = 64,
        depth: int = 4,
        n_heads: int = 4,
        mlp_ratio: float = 4.0,
        pos_embed: Literal["learned", "sincos", "none"] = "learned",
        pool: Literal["cls", "mean"] = "cls",
        dropout: float = 0.0,
    ):
        super().__init__()
        if pos_embed not in ("learned", "sincos", "none"):
            raise ValueError(f"ViT: unknown pos_embed {pos_embed!r}; choose learned, sincos, none")
        if pool not in ("cls", "mean"):
            raise ValueError(f"ViT: unknown pool {pool!r}; choose cls or mean")
        self.pool = pool
        self.pos_embed_kind = pos_embed
        self.patch_embed = PatchEmbed(
            image_size=image_size, patch_size=patch_size, in_channels=in_channels, dim=dim
        )
        n_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + (pool == "cls"), dim))
        elif pos_embed == "sincos":
            grid = sincos_position_embedding(self.patch_embed.grid_size, dim)
            self.register_buffer("pos_embed", grid[None], persistent=False)  # (1, N, dim)
        else:
            self.pos_embed = None
        self.drop = nn.Dropout(dropout)  # after adding the position embeddings (App. B.1)
        self.transformer = Transformer(
            dim=dim, depth=depth, n_heads=n_heads, mlp_ratio=mlp_ratio, dropout=dropout
        )
        # DEVIATION: a single linear head (the paper's fine-tuning head, Sec. 3.1; pre-training
        # used an MLP with one hidden layer), initialised like the other Linears, not zeros.
        self.head = nn.Linear(dim, num_classes)
        self.apply(init_weights)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        if pos_embed == "learned":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def tokens(self, images: Tensor) -> Tensor:
        """(B, T, dim) all token states after the final norm (class token first if pool="cls")."""
        x = self.patch_embed(images)  # (B, N, dim)
        if self.pos_embed_kind == "sincos":
            x = x + self.pos_embed
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed_kind == "learned":
            x = x + self.pos_embed
        return self.transformer(self.drop(x))

    def features(self, images: Tensor) -> Tensor:
        """(B, dim) pooled representation, after the final norm."""
        x = self.tokens(images)
        return x[:, 0] if self.pool == "cls" else x.mean(dim=1)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))  # (B, num_classes)
