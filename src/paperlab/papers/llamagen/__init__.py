"""Autoregressive Model Beats Diffusion: Llama for Scalable Image Generation (Sun, Jiang, Chen,
Zhang, Peng, Luo, Yuan; arXiv 2406.06525, 2024).

Idea: no image-specific inductive bias in the generator. An image tokenizer (a VQGAN-style
conv encoder/decoder with a codebook of l2-normalised, 8-dimensional codes looked up by cosine
similarity, Sec. 2.1) turns an image into a grid of discrete codes; a plain Llama decoder
(RMSNorm, SwiGLU, 2D RoPE over the token grid, zero-initialised output layer) predicts the codes
in raster order after a class token (Sec. 2.2). Class dropout (0.1) in training gives a null
class, and classifier-free guidance at sampling doubles the batch into conditional and
unconditional streams, logits = uncond + (cond - uncond) * scale. Serving reuses the LLM
stack: a KV cache and batched cond/uncond streams (the paper's vLLM serving section).

Claims: the l2-normalised low-dimensional codebook is used almost fully (97%) and reconstructs
well; class-conditional AR models reach FID 2.18 on ImageNet 256 with CFG (quality depends on
the guidance scale); LLM serving techniques speed sampling up 3.26-4.14x.

Public API: ``VQTokenizer``, ``VQTokenizerConfig``, ``tokenizer_loss``; ``LlamaGen``,
``LlamaGenConfig``, ``RotaryEmbedding2D``, ``generator_loss``; ``sample``, ``cfg_logits``,
``generate_images``; ``train_tokenizer``, ``train_generator``, ``encode_images``. See
README.md for what is scaled down and the differences from the paper.
"""

from paperlab.papers.llamagen.generator import (
    LlamaGen,
    LlamaGenConfig,
    RotaryEmbedding2D,
    generator_loss,
)
from paperlab.papers.llamagen.sample import cfg_logits, generate_images, sample
from paperlab.papers.llamagen.tokenizer import VQTokenizer, VQTokenizerConfig, tokenizer_loss
from paperlab.papers.llamagen.training import encode_images, train_generator, train_tokenizer

__all__ = [
    "LlamaGen",
    "LlamaGenConfig",
    "RotaryEmbedding2D",
    "VQTokenizer",
    "VQTokenizerConfig",
    "cfg_logits",
    "encode_images",
    "generate_images",
    "generator_loss",
    "sample",
    "tokenizer_loss",
    "train_generator",
    "train_tokenizer",
]
