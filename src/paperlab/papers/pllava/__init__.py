"""PLLaVA: Parameter-free LLaVA Extension from Images to Videos for Video Dense Captioning
(Xu, Zhao, Zhou, Lin, Ng, Feng 2024; arXiv 2404.16994).

Idea: an image-LLM (LLaVA) becomes a video-LLM without new parameters. Each frame goes through
the image encoder and the projector; the frame tokens, arranged as (video, C, T, h, w), are
average-pooled to a fixed shape (adaptive pooling; 16x24x24 -> 16x12x12, spatial only) and fed
to the LLM, which is tuned with LoRA (r 128, alpha 32). The paper finds that tuning on all
frames' tokens without pooling saturates or degrades as the video data grows, with a few visual
tokens growing very large norms and answers getting shorter; pooling fixes it, spatial pooling
beats temporal pooling, and lowering LoRA's alpha at evaluation (32 -> 4) mixes the image
model back in and raises the captioning score.

Miniature: a tiny image-LLM (``paperlab.core.imagellm``) trained on procedural single-shape
images, extended to 8 frames of 16-frame procedural clips with questions about motion
direction, order and counting (see README.md).

Public API: ``PLLaVA`` (pooling projector, LoRA via peft, ``set_lora_alpha``, save/load);
the data ``make_images``, ``make_clips``, ``sample_frame_indices``, ``caption_score``,
``image_examples``, ``IMAGE_PROMPTS``, ``VIDEO_PROMPTS``; the trainings
``train_image_model``, ``make_video_data``, ``train_video``, ``evaluate_video``,
``train_pllava``.
"""

from paperlab.papers.pllava.data import (
    IMAGE_PROMPTS,
    VIDEO_PROMPTS,
    caption_score,
    image_examples,
    make_clips,
    make_images,
    sample_frame_indices,
)
from paperlab.papers.pllava.model import PLLaVA
from paperlab.papers.pllava.runs import (
    evaluate_video,
    make_video_data,
    train_image_model,
    train_pllava,
    train_video,
)

__all__ = [
    "IMAGE_PROMPTS",
    "PLLaVA",
    "VIDEO_PROMPTS",
    "caption_score",
    "evaluate_video",
    "image_examples",
    "make_clips",
    "make_images",
    "make_video_data",
    "sample_frame_indices",
    "train_image_model",
    "train_pllava",
    "train_video",
]
