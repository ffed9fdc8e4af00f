"""LlamaGen's three claims in miniature (Sun et al. 2024, arXiv 2406.06525).

(1) tokenizer: an l2-normalised codebook of dimension 8 uses more of its codes and reconstructs
    at least as well as plain VQ (dimension 64, no normalisation) at the same codebook size and
    training steps, neither with dead-code restarts (Sec. 2.1; paper: 97% usage).
(2) cfg: classifier-free guidance trades diversity for class fidelity: the class accuracy of
    samples rises with the guidance scale; FD-shapes is reported per scale (the paper's FID is
    best at a moderate scale, about 1.75-2, and worse beyond it).
(3) kv_cache: sampling with a KV cache and batched cond/uncond streams is faster than
    recomputing the whole prefix at every step, with identical tokens (the paper reports
    3.26-4.14x from a vLLM serving stack).

Data: procedural shapes (12 classes = 4 shapes x 3 colours, 16 px) from
`paperlab.core.data.images`; the judge is a small CNN trained here on the same data
(`paperlab.core.image_metric`): FD-shapes = Frechet distance of its 64-d penultimate features
between generated images and held-out real images; class accuracy = its prediction == the
class the sample was conditioned on. The trained tokenizer, generator and judge are shared by
the claims of one run (`ctx.shared`).
"""

from __future__ import annotations

from dataclasses import dataclass

from paperlab.claims import Claim, PaperClaims, all_of, at_least, at_most
from paperlab.core.data.images import DATASETS
from paperlab.papers.llamagen.experiments import (
    CHANNEL_MULT,
    DIGITS_IMAGES,
    run_cfg,
    run_kv_cache,
    run_tokenizer,
)


@dataclass
class LlamaGenClaimsConfig:
    # DEVIATION: 16 px shapes, 256 codes, 8 x 8 tokens and a 0.19M-parameter generator instead of
    # ImageNet at 256 px, 16384 codes, 16 x 16 tokens and 111M-3.1B parameters (see README)
    dataset: str = "shapes"  # or "digits" (scikit-learn's, 10 classes, 1 channel)
    image_size: int = 16
    n_images: int = 4000  # shapes only (digits has 1797)
    n_test: int = 500  # held out: tokenizer MSE/usage and the judge's reference statistics
    threads: int = 0  # torch threads during the claims (0 = torch's default)
    # (1) tokenizers (Sec. 2.1)
    downsample: int = 2  # 16 px -> 8 x 8 tokens (paper: 16, 256 px -> 16 x 16)
    tok_channels: int = 16  # paper: 128
    codebook_size: int = 256  # paper: 16384
    codebook_dim: int = 8  # paper: 8 (l2-normalised)
    plain_dim: int = 64  # the plain-VQ baseline's code dimension (no normalisation)
    tok_steps: int = 300
    tok_batch: int = 32
    tok_lr: float = 1e-3  # paper: 1e-4
    # (2) generator (Sec. 2.2) and CFG sweep
    gen_dim: int = 64
    gen_layers: int = 3
    gen_heads: int = 2
    gen_steps: int = 1000
    gen_batch: int = 64
    gen_lr: float = 3e-3  # paper: 1e-4
    class_dropout: float = 0.1  # paper: 0.1
    cfg_scales: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0)
    samples_per_class: int = 20
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    judge_steps: int = 400  # the judge CNN's training steps (core default)
    # (3) sampling speed
    kv_images: int = 24
    kv_cfg_scale: float = 2.0
    kv_reps: int = 3

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset={self.dataset!r}: choose one of {', '.join(DATASETS)}")
        if self.downsample not in CHANNEL_MULT or self.image_size % self.downsample:
            raise ValueError(
                f"downsample={self.downsample} must be one of {sorted(CHANNEL_MULT)} and divide "
                f"image_size={self.image_size}"
            )
        if not self.cfg_scales or self.cfg_scales[0] != 1.0 or len(self.cfg_scales) < 2:
            raise ValueError("cfg_scales must start with 1 (no guidance) and have >= 2 scales")
        if list(self.cfg_scales) != sorted(self.cfg_scales):
            raise ValueError("cfg_scales must be increasing, e.g. 1,1.5,2,3,4")
        sizes = (self.tok_channels, self.codebook_size, self.codebook_dim, self.plain_dim)
        if min(sizes) < 1 or min(self.gen_dim, self.gen_layers, self.gen_heads) < 1:
            raise ValueError(
                "tok_channels, codebook_size, codebook_dim, plain_dim, gen_dim, gen_layers and "
                "gen_heads must be >= 1"
            )
        if (self.gen_dim // max(self.gen_heads, 1)) % 4 or self.gen_dim % max(self.gen_heads, 1):
            raise ValueError("gen_dim / gen_heads must be an integer multiple of 4 (2D RoPE)")
        if min(self.tok_steps, self.gen_steps, self.samples_per_class, self.kv_images) < 1:
            raise ValueError("tok_steps, gen_steps, samples_per_class, kv_images must be >= 1")
        available = self.n_images if self.dataset == "shapes" else DIGITS_IMAGES
        if not 1 <= self.n_test < available:
            raise ValueError(
                f"n_test={self.n_test} must be in 1..{available - 1} for {self.dataset}"
            )
        if self.kv_reps < 1 or self.threads < 0:
            raise ValueError("kv_reps must be >= 1 and threads >= 0")


PRESETS = {
    "tiny": dict(
        n_images=480,
        n_test=96,
        threads=1,
        tok_channels=8,
        codebook_size=64,
        tok_steps=12,
        tok_batch=16,
        gen_dim=32,
        gen_layers=1,
        gen_heads=2,
        gen_steps=12,
        gen_batch=16,
        cfg_scales=(1.0, 4.0),
        samples_per_class=2,
        judge_steps=12,
        kv_images=4,
        kv_reps=1,
    ),
    "default": {},
    # the paper's token grid (16 x 16) at 32 px; lr as the paper; needs a GPU to be quick
    "full": dict(
        image_size=32,
        n_images=20000,
        n_test=2000,
        tok_channels=64,
        codebook_size=1024,
        tok_steps=5000,
        tok_batch=64,
        tok_lr=1e-4,
        gen_dim=256,
        gen_layers=8,
        gen_heads=8,
        gen_steps=20000,
        gen_batch=128,
        gen_lr=1e-4,
        samples_per_class=100,
        judge_steps=2000,
        kv_images=64,
        kv_reps=5,
    ),
}


PAPER = PaperClaims(
    config=LlamaGenClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="tokenizer",
            statement="l2-normalised dim-8 codes use more of the codebook than plain dim-64 VQ "
            "and reconstruct at least as well (same size, same steps, no restarts)",
            paper_figure="97% usage of 16384 codes; rFID 2.19 at 16x16 tokens (ImageNet)",
            criterion=all_of(at_least("usage_gain", 0.10), at_most("mse_ratio", 1.10)),
            run=run_tokenizer,
            ours="usage {usage_l2:.0%} vs plain {usage_plain:.0%}; "
            "MSE {mse_l2:.4f} vs {mse_plain:.4f}",
        ),
        Claim(
            id="cfg",
            statement="CFG raises the class accuracy of samples (FD per scale reported; "
            "the paper's FID is U-shaped in the scale)",
            paper_figure="FID 2.18 (3B, ImageNet 256, CFG); FID best at a moderate scale (~1.75-2)",
            criterion=at_least("acc_gain", 0.05, margin=0.05),
            run=run_cfg,
            ours="class acc {acc_no_cfg:.0%} -> {acc_max_scale:.0%} at CFG {max_scale:g}; "
            "{fd_name} {fd_no_cfg:.3g} -> best {fd_best:.3g} at CFG {fd_argmin_scale:g}",
        ),
        Claim(
            id="kv_cache",
            timed=True,
            statement="sampling with a KV cache and batched cond/uncond streams is faster than "
            "recomputing the prefix, with identical tokens",
            paper_figure="3.26-4.14x: vLLM vs their KV-cached PyTorch sampler (A100)",
            criterion=all_of(at_least("speedup", 3.0), at_least("tokens_identical", 1.0)),
            run=run_kv_cache,
            ours="{speedup:.1f}x ({images_per_s_cache:.0f} vs {images_per_s_recompute:.0f} "
            "images/s, {image_tokens:.0f} tokens), identical tokens: {tokens_identical:.0f}",
        ),
    ],
)
