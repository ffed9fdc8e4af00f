"""An Image is Worth 32 Tokens for Reconstruction and Generation (TiTok; Yu, Weber, Deng, Shen,
Cremers, Chen; arXiv 2406.07550, NeurIPS 2024).

Idea: a 2D-grid tokenizer (VQGAN, ViT-VQGAN) ties the number of tokens to the patch grid, so
neighbouring, redundant patches each cost a token. TiTok appends K learnable latent tokens to
the patch tokens of a ViT encoder, keeps only the K latent outputs and vector-quantises them
(l2-normalised 12-d codes); a ViT decoder reconstructs the image from N mask tokens plus the K
quantised latents (Sec. 3.2). The token count is thus free of the grid: 32 tokens describe a
256x256 image. A MaskGIT generator (bidirectional transformer, masked-token training, parallel
decoding with an arccos schedule, classifier-free guidance; Sec. 3.3) then generates images
from K tokens instead of hundreds.

Claims: with 32 tokens, TiTok reconstructs competitively with 2D tokenizers of 256 tokens
(Fig. 4, Table 1); fewer tokens make the encoder's latents more semantic (higher linear-probe
accuracy, Fig. 4); generation with K tokens is far faster at comparable or better FID (gFID
1.97 on ImageNet 256 vs MaskGIT's 6.18; at 512 px 2.74 vs DiT-XL/2 3.04 with 64x fewer
tokens and 410x faster sampling).

Public API: ``TiTokTokenizer``, ``GridTokenizer``, ``train_tokenizer``,
``reconstruction_mse``, ``MaskGIT``, ``maskgit_loss``, ``masked_token_loss``, ``mask_counts``,
``mask_ratio``, ``ARGenerator``, ``train_generator``, ``tokenize``, ``sample_images``,
``linear_probe``. See README.md for what is scaled down and the differences from the paper.
"""

from paperlab.papers.titok.ar import ARGenerator
from paperlab.papers.titok.generation import sample_images, tokenize, train_generator
from paperlab.papers.titok.maskgit import (
    SCHEDULES,
    MaskGIT,
    cfg_scale_at,
    guided_logits,
    gumbel_noise,
    mask_counts,
    mask_ratio,
    masked_token_loss,
    maskgit_loss,
    random_mask,
)
from paperlab.papers.titok.probe import linear_probe
from paperlab.papers.titok.tokenizer import (
    GridTokenizer,
    TiTokTokenizer,
    reconstruction_mse,
    train_tokenizer,
)

__all__ = [
    "SCHEDULES",
    "ARGenerator",
    "GridTokenizer",
    "MaskGIT",
    "TiTokTokenizer",
    "cfg_scale_at",
    "guided_logits",
    "gumbel_noise",
    "linear_probe",
    "mask_counts",
    "mask_ratio",
    "masked_token_loss",
    "maskgit_loss",
    "random_mask",
    "reconstruction_mse",
    "sample_images",
    "tokenize",
    "train_generator",
    "train_tokenizer",
]
