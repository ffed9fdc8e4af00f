"""An Image is Worth More Than 16x16 Patches: Exploring Transformers on Individual Pixels
(PiT; Nguyen, Assran, Jain, Oswald, Snoek, Chen; arXiv 2406.09415).

Idea: a ViT keeps one inductive bias of ConvNets, locality: a token is a p x p patch of
neighbouring pixels. The Pixel Transformer (PiT) removes it: every pixel is a token (a linear
projection of its C channel values), a learned position embedding is added and a vanilla
transformer with a class token runs over the H*W tokens. The model knows nothing of the 2D
grid; it must learn which pixels are near. PiT is the paper's finding, not a new method.

Claims: pixel tokens match or beat patch tokens at equal width and depth (CIFAR-100, ImageNet
at 28x28; accuracy rises as the patch shrinks 8 -> 1); patchification, not the position
embedding, is where ViT's locality lives (pixel-permutation and position-embedding
ablations); PiT works for MAE self-supervised pre-training and for DiT-style diffusion (the
latter is not reproduced here). Miniature: 8x8 digits and 16 px procedural shapes, 3 seeds.

Public API: ``pixel_transformer``, ``patch_vit``, ``model_name``, ``pixel_permutation``,
``permute_pixels``, ``permute_positions``; ``MAE``, ``random_masking``, ``masked_mse``,
``normalise_tokens``, ``classifier_from_mae``. See README.md for what is scaled down and the
differences from the paper.
"""

from paperlab.papers.pit.mae import (
    MAE,
    classifier_from_mae,
    masked_mse,
    normalise_tokens,
    random_masking,
)
from paperlab.papers.pit.model import (
    POS_EMBEDS,
    model_name,
    patch_vit,
    permute_pixels,
    permute_positions,
    pixel_permutation,
    pixel_transformer,
)

__all__ = [
    "MAE",
    "POS_EMBEDS",
    "classifier_from_mae",
    "masked_mse",
    "model_name",
    "normalise_tokens",
    "patch_vit",
    "permute_pixels",
    "permute_positions",
    "pixel_permutation",
    "pixel_transformer",
    "random_masking",
]
