"""PiT and its patch-ViT counterpart, both from ``paperlab.core.vit.ViT``; pixel permutations.

A Pixel Transformer (PiT, Sec. 3) is a ViT whose "patch" is one pixel: each pixel's C channel
values are linearly projected to the width (``PatchEmbed`` with patch size 1), a learned
position embedding is added, and a vanilla transformer runs over the H*W tokens plus a class
token. Nothing else changes, so PiT and ViT-p2/p4 below differ only in ``patch_size``.

    pit = pixel_transformer(image_size=8, in_channels=1, num_classes=10)   # 64 pixel tokens
    vit = patch_vit(image_size=8, patch_size=2, in_channels=1, num_classes=10)  # 16 tokens
    perm = pixel_permutation(8, seed=0)            # one fixed shuffle of the 64 pixel positions
    permute_positions(pit, perm)(permute_pixels(x, perm))  # == pit(x) up to float rounding
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import Tensor, nn

from paperlab.core.vit import ViT

PosEmbed = Literal["learned", "sincos", "none"]
POS_EMBEDS: tuple[str, ...] = ("learned", "sincos", "none")


def patch_vit(
    *,
    image_size: int,
    patch_size: int,
    in_channels: int,
    num_classes: int,
    dim: int = 64,
    depth: int = 2,
    n_heads: int = 2,
    mlp_ratio: float = 4.0,
    pos_embed: PosEmbed = "learned",
) -> ViT:
    """A ViT classifier with ``patch_size`` x ``patch_size`` patches, a class token and the
    given position embedding (ViT Eq. 1-4; the model of Sec. 4.1's baselines).

    The patch projection is re-initialised as in MAE's code (Xavier-uniform over the
    flattened weight) instead of ``core.vit``'s trunc-normal(0.02): with one pixel per token
    (fan-in 1 or 3) the 0.02 init makes the pixel's value ~1/30 of a fixed sin-cos position
    vector, and such a PiT stayed at chance for 600 steps in our first default run.
    """
    model = ViT(
        image_size=image_size,
        patch_size=patch_size,
        in_channels=in_channels,
        num_classes=num_classes,
        dim=dim,
        depth=depth,
        n_heads=n_heads,
        mlp_ratio=mlp_ratio,
        pos_embed=pos_embed,
        pool="cls",
    )
    # DEVIATION (from core.vit, not from the paper): MAE's patch-projection init.
    weight = model.patch_embed.proj.weight  # (dim, p*p*C)
    nn.init.xavier_uniform_(weight.data.view(weight.shape[0], -1))  # MAE: patch_embed init
    return model


def pixel_transformer(
    *,
    image_size: int,
    in_channels: int,
    num_classes: int,
    dim: int = 64,
    depth: int = 2,
    n_heads: int = 2,
    mlp_ratio: float = 4.0,
    pos_embed: PosEmbed = "learned",
) -> ViT:
    """PiT (Sec. 3): every pixel is a token (patch size 1), learned positions by default."""
    return patch_vit(
        image_size=image_size,
        patch_size=1,
        in_channels=in_channels,
        num_classes=num_classes,
        dim=dim,
        depth=depth,
        n_heads=n_heads,
        mlp_ratio=mlp_ratio,
        pos_embed=pos_embed,
    )


def model_name(patch_size: int, pos_embed: str = "learned") -> str:
    """ "pit" / "vit_p2" (learned positions), "pit_sincos" / "vit_p4_none" otherwise."""
    base = "pit" if patch_size == 1 else f"vit_p{patch_size}"
    return base if pos_embed == "learned" else f"{base}_{pos_embed}"


# ---------------------------------------------------------------------------------------------
# Pixel permutations (Sec. 6: locality of patchification vs position embedding)


def pixel_permutation(image_size: int, *, seed: int) -> Tensor:
    """One fixed random permutation of the image_size**2 pixel positions (row-major)."""
    # DEVIATION: one global shuffle of all pixels; Sec. 6 moves pixels within a distance.
    if image_size < 1:
        raise ValueError(f"pixel_permutation: image_size={image_size} must be >= 1")
    return torch.randperm(image_size * image_size, generator=torch.Generator().manual_seed(seed))


def permute_pixels(images: Tensor, perm: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, H, W) with output pixel i = input pixel perm[i] (row-major);
    every channel of a pixel moves together."""
    B, C, H, W = images.shape
    if perm.shape != (H * W,):
        raise ValueError(f"permute_pixels: perm has shape {tuple(perm.shape)}, want ({H * W},)")
    return images.reshape(B, C, H * W)[:, :, perm].reshape(B, C, H, W)


def permute_positions(model: ViT, perm: Tensor) -> ViT:
    """A copy of a PiT with learned positions whose pixel position embeddings are permuted
    like :func:`permute_pixels` permutes the pixels: then ``permuted(permute_pixels(x, perm))``
    sees exactly the tokens ``model(x)`` sees, in another order, and a transformer with a class
    token is equivariant to the order of the other tokens, so the logits are equal."""
    if model.patch_embed.patch_size != 1 or model.pos_embed_kind != "learned":
        raise ValueError("permute_positions: needs a PiT (patch size 1) with learned positions")
    out = copy.deepcopy(model)
    offset = 1 if model.cls_token is not None else 0  # the class token's position stays put
    with torch.no_grad():
        out.pos_embed[:, offset:] = model.pos_embed[:, offset:][:, perm]
    return out
