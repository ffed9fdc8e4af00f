"""TiTok's three claims in miniature (Yu et al. 2024, arXiv 2406.07550).

(1) reconstruction: a 1D tokenizer reconstructs better with more latent tokens K, and is more
    compact than a 2D grid (Fig. 4, Table 1: 32 TiTok tokens ~ 256 VQGAN grid tokens).
(2) linear_probe: fewer latent tokens make the encoder's latents more semantic (Fig. 4).
(3) generation: with K tokens a generator samples far faster than over a 2D grid, at
    comparable quality (Sec. 4.3: 410x faster than DiT-XL/2 at 512 px, gFID 2.74 vs 3.04).

Data: procedural shapes (16 px, 12 classes). Quality of samples: FD-shapes, the Frechet
distance in the features of a small classifier trained here (not FID). All models are trained
once per run and shared between the claims (the runs are in
``paperlab.papers.titok.experiments``).
"""

from __future__ import annotations

from dataclasses import dataclass

from paperlab.claims import Claim, PaperClaims, all_of, at_least, at_most
from paperlab.core.data.images import DATASETS
from paperlab.papers.titok.experiments import (
    run_generation,
    run_linear_probe,
    run_reconstruction,
)
from paperlab.papers.titok.maskgit import SCHEDULES


@dataclass
class TiTokClaimsConfig:
    dataset: str = "shapes"
    image_size: int = 16
    n_train: int = 4000
    n_test: int = 1000
    workers: int = 2  # processes for the independent trainings (1 = in this process)
    threads: int = 1  # torch threads per process
    # tokenizers: TiTok for every K, the 2D grid with 16 (patch 4) and 64 (patch 2) tokens
    token_counts: tuple[int, ...] = (2, 4, 8, 16)
    titok_patch_size: int = 4
    grid_patch_sizes: tuple[int, ...] = (4, 2)
    width: int = 64
    enc_depth: int = 2
    dec_depth: int = 2
    n_heads: int = 4
    codebook_size: int = 256
    code_dim: int = 12
    tok_steps: int = 600
    tok_batch: int = 32
    tok_lr: float = 3e-3
    restart_every: int = 50  # dead-code restarts (0 = off: the codebook collapses)
    # (2) linear probe on the mean-pooled pre-quantisation latents
    probe_train: int = 2000
    # (3) generation over K = gen_tokens TiTok tokens vs the grid of patch gen_grid_patch
    gen_tokens: int = 8
    gen_grid_patch: int = 2
    gen_dim: int = 64
    gen_depth: int = 2
    gen_steps: int = 500
    gen_batch: int = 32
    gen_lr: float = 1e-3
    num_steps: int = 8  # MaskGIT decoding steps
    schedule: str = "arccos"
    cfg_scale: float = 2.0
    randomness_temperature: float = 4.5
    judge_steps: int = 400
    n_samples: int = 500
    timing_batch: int = 100
    timing_reps: int = 3

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset={self.dataset!r}: choose one of {', '.join(DATASETS)}")
        if not self.token_counts or min(self.token_counts) < 1:
            raise ValueError("token_counts must be positive latent-token counts, e.g. 2,4,8,16")
        for p in (self.titok_patch_size, *self.grid_patch_sizes, self.gen_grid_patch):
            if p < 1 or self.image_size % p:
                raise ValueError(f"patch size {p} must divide image_size={self.image_size}")
        if self.gen_tokens not in self.token_counts:
            raise ValueError(f"gen_tokens={self.gen_tokens} must be one of token_counts")
        if self.gen_grid_patch not in self.grid_patch_sizes:
            raise ValueError(f"gen_grid_patch={self.gen_grid_patch} must be in grid_patch_sizes")
        if self.num_steps > self.gen_tokens:
            raise ValueError(f"num_steps={self.num_steps} must be <= gen_tokens={self.gen_tokens}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if self.width % self.n_heads or self.gen_dim % self.n_heads:
            raise ValueError("width and gen_dim must be divisible by n_heads")
        if min(self.tok_steps, self.gen_steps, self.n_samples, self.timing_batch) < 1:
            raise ValueError("tok_steps, gen_steps, n_samples and timing_batch must be >= 1")


# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost)
PROBE_MARGIN = 0.02  # probe accuracy of the smallest K must beat the largest K by this
MIN_SPEEDUP = 5.0  # images/s with K TiTok tokens over the 64-token grid (the target)
MAX_FD_RATIO = 1.5  # "comparable FD": TiTok's FD-shapes <= 1.5x the grid's (MaskGIT and AR)

PRESETS = {
    "tiny": dict(
        n_train=300,
        n_test=200,
        workers=1,
        token_counts=(2, 8),
        width=32,
        enc_depth=1,
        dec_depth=1,
        codebook_size=64,
        tok_steps=30,
        tok_batch=16,
        restart_every=10,
        probe_train=200,
        gen_dim=32,
        gen_depth=1,
        gen_steps=20,
        gen_batch=16,
        judge_steps=20,
        n_samples=64,
        timing_batch=16,
        timing_reps=1,
    ),
    "default": {},
    "full": dict(
        n_train=20000,
        n_test=2000,
        token_counts=(2, 4, 8, 16, 32),
        width=128,
        enc_depth=4,
        dec_depth=4,
        codebook_size=1024,
        tok_steps=5000,
        tok_batch=64,
        probe_train=5000,
        gen_dim=128,
        gen_depth=4,
        gen_steps=5000,
        judge_steps=1000,
        n_samples=5000,
        timing_reps=5,
    ),
}


PAPER = PaperClaims(
    config=TiTokClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="reconstruction",
            statement="More latent tokens reconstruct better, and a 1D tokenizer is more "
            "compact than a 2D grid: TiTok with as many tokens reconstructs at least as well",
            paper_figure="Fig. 4 / Table 1: rFID falls as K grows; TiTok-L-32 rFID 2.21 with "
            "32 tokens vs MaskGIT-VQGAN 2.28 with 256 grid tokens",
            criterion=all_of(
                at_least("mse_ratio_kmin_over_kmax", 1.0),
                at_most("mse_ratio_titok_over_grid", 1.0, margin=0.1),
            ),
            run=run_reconstruction,
            ours="MSE K=min {mse_ratio_kmin_over_kmax:.2f}x K=max; TiTok/grid at equal tokens "
            "{mse_ratio_titok_over_grid:.2f}",
        ),
        Claim(
            id="linear_probe",
            statement="Fewer latent tokens give more semantic latents: linear-probe accuracy "
            "rises as K falls",
            paper_figure="Fig. 4: ImageNet linear-probe accuracy of the TiTok encoder is "
            "higher with fewer latent tokens",
            criterion=at_least("probe_gain_kmin_minus_kmax", PROBE_MARGIN, margin=PROBE_MARGIN),
            run=run_linear_probe,
            ours="probe accuracy smallest K - largest K = {probe_gain_kmin_minus_kmax:+.3f} "
            "(rank corr {probe_rank_corr:+.2f})",
        ),
        Claim(
            id="generation",
            statement="Generating K TiTok tokens is much faster than generating a 2D grid "
            "of tokens, at comparable sample quality",
            paper_figure="Sec. 4.3 / Table 3: 410x faster than DiT-XL/2 at 512 px with 64x "
            "fewer tokens (gFID 2.74 vs 3.04); MaskGIT gFID 1.97 with TiTok vs 6.18",
            criterion=all_of(
                at_least("speedup_maskgit", MIN_SPEEDUP),
                at_least("speedup_ar", MIN_SPEEDUP),
                at_most("fd_ratio_maskgit", MAX_FD_RATIO),
                at_most("fd_ratio_ar", MAX_FD_RATIO),
            ),
            run=run_generation,
            ours="MaskGIT {speedup_maskgit:.1f}x, AR {speedup_ar:.1f}x faster; FD-shapes "
            "TiTok/grid: MaskGIT {fd_maskgit_titok:.0f}/{fd_maskgit_grid:.0f}, "
            "AR {fd_ar_titok:.0f}/{fd_ar_grid:.0f}",
        ),
    ],
)
