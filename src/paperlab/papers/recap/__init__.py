"""What If We Recaption Billions of Web Images with LLaMA-3? (Recap-DataComp-1B; Li, Tu, Hui,
Wang, Zhao, Xiao, Ren, Mei, Liu, Zheng, Zhou, Xie; arXiv 2406.08478).

Idea: web image-text pairs carry short, noisy alt-texts. Fine-tune an image-LLM
(LLaVA-1.5 on LLaMA-3-8B) to write detailed captions, run it over all 1.3B DataComp-1B images
and release the recaptions next to the originals (columns ``url``, ``org_caption``,
``re_caption``). CLIP trained on a mix (each sample's text is its original caption with
probability p, its recaption otherwise) improves cross-modal retrieval, most of all with long
queries, and text-to-image DiTs follow long prompts better.

Here: the recaptioning pipeline itself (folder / tar shard / Parquet or JSONL manifest ->
captioner -> sharded, resumable records; embedded or as a Ray Data ``map_batches``), the
mixing, and the claims in miniature on procedural multi-object scenes with the core
image-LLM as captioner and the core tiny CLIP.

Public API: ``caption_source``, ``caption_batch``, ``list_items``, ``read_records``,
``CaptionSummary``, ``RECORD_COLUMNS``; ``mixed_captions``, ``check_p``,
``ImageLLMCaptioner``, ``PROMPT``; the scenes: ``sample_scenes``, ``render_scenes``,
``web_captions``, ``long_caption``, ``short_query``, ``parse_caption``, ``caption_scores``.
"""

from paperlab.papers.recap.mix import PROMPT, ImageLLMCaptioner, check_p, mixed_captions
from paperlab.papers.recap.pipeline import (
    RECORD_COLUMNS,
    CaptionSummary,
    caption_batch,
    caption_source,
    list_items,
    read_records,
)
from paperlab.papers.recap.scenes import (
    CLASS_NAMES,
    Scene,
    SceneObject,
    caption_scores,
    long_caption,
    parse_caption,
    render_scenes,
    sample_scenes,
    short_query,
    web_captions,
)

__all__ = [
    "CLASS_NAMES",
    "PROMPT",
    "RECORD_COLUMNS",
    "CaptionSummary",
    "ImageLLMCaptioner",
    "Scene",
    "SceneObject",
    "caption_batch",
    "caption_scores",
    "caption_source",
    "check_p",
    "list_items",
    "long_caption",
    "mixed_captions",
    "parse_caption",
    "read_records",
    "render_scenes",
    "sample_scenes",
    "short_query",
    "web_captions",
]
