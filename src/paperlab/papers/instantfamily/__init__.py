"""InstantFamily: Masked Attention for Zero-shot Multi-ID Image Generation (Kim, Lee, Joung,
Kim, Baek; arXiv 2404.19427).

Idea: to generate a picture of several given people, condition a diffusion model on a
*multimodal embedding stack* - the text tokens followed by each person's identity tokens (a
face-recognition model's global 1-D embedding and its last L x L feature map, projected to
L² + 1 tokens), growing with the number of people - and mask the cross-attention so that a
pixel inside person i's face region (the box plus a 25% margin) attends to the text and person
i's tokens only, a background pixel to the text only: softmax(M ⊙ QKᵀ/√d) V, in the UNet and
in a ControlNet branch fed the face locations. Claims: state-of-the-art single- and multi-ID
similarity (0.799; MultiSim 1.620), no identity mixing, and more people than trained with.

Miniature: procedural cartoon faces from continuous identity vectors on 24 px canvases; the
identity encoder and a separate judge are trained here with CosFace; a tiny diffusers UNet +
ControlNet is trained on 1-2 people and tested on 1-4 new ones.

Public API: ``RegionMask``, ``MaskedAttnProcessor``, ``install_masked_attention``,
``masked_logits``; ``IdentityEncoder``, ``EncoderConfig``, ``train_encoder``, ``embed``;
``InstantFamily``, ``GeneratorConfig``, ``Condition``; ``make_pool``, ``train_generator``,
``generate``; the data helpers (``make_scene``, ``id_images``, ``check_boxes``,
``grid_boxes``). See README.md.
"""

from paperlab.papers.instantfamily.attention import (
    MASK_MODES,
    MaskedAttnProcessor,
    RegionMask,
    install_masked_attention,
    masked_logits,
)
from paperlab.papers.instantfamily.data import (
    COLOURS,
    FACE_PX,
    MARGIN,
    check_boxes,
    grid_boxes,
    id_images,
    make_scene,
    random_identities,
)
from paperlab.papers.instantfamily.identity import (
    EncoderConfig,
    IdentityEncoder,
    embed,
    identification_accuracy,
    train_encoder,
)
from paperlab.papers.instantfamily.model import Condition, GeneratorConfig, InstantFamily
from paperlab.papers.instantfamily.pipeline import generate, make_pool, train_generator

__all__ = [
    "COLOURS",
    "Condition",
    "EncoderConfig",
    "FACE_PX",
    "GeneratorConfig",
    "IdentityEncoder",
    "InstantFamily",
    "MARGIN",
    "MASK_MODES",
    "MaskedAttnProcessor",
    "RegionMask",
    "check_boxes",
    "embed",
    "generate",
    "grid_boxes",
    "id_images",
    "identification_accuracy",
    "install_masked_attention",
    "make_pool",
    "make_scene",
    "masked_logits",
    "random_identities",
    "train_encoder",
    "train_generator",
]
