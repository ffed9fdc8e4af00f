"""TiTok's three claims in miniature (card `titok` in PAPERS.md; Yu et al. 2024, 2406.07550).

(1) reconstruction: a 1D tokenizer reconstructs better with more latent tokens K, and is more
    compact than a 2D grid (Fig. 4, Table 1: 32 TiTok tokens ~ 256 VQGAN grid tokens).
(2) linear_probe: fewer latent tokens make the encoder's latents more semantic (Fig. 4).
(3) generation: with K tokens a generator samples far faster than over a 2D grid, at
    comparable quality (Sec. 4.3: 410x faster than DiT-XL/2 at 512 px, gFID 2.74 vs 3.04).

Data: procedural shapes (16 px, 12 classes). Quality of samples: FD-shapes, the Frechet
distance in the features of a small classifier trained here (not FID). All models are trained
once per run and shared between the claims.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from paperlab.claims import Claim, PaperClaims, RunContext, all_of, at_least, at_most
from paperlab.core.data.images import DATASETS
from paperlab.core.device import torch_threads
from paperlab.core.timing import time_interleaved
from paperlab.papers.titok.experiments import (
    build_generators,
    build_tokenizers,
    grid_name,
    load_data,
    titok_name,
)
from paperlab.papers.titok.maskgit import SCHEDULES
from paperlab.papers.titok.plots import plot_generation, plot_probe, plot_reconstruction
from paperlab.papers.titok.probe import linear_probe, pooled_latents
from paperlab.papers.titok.tokenizer import reconstruction_mse


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


def _data(ctx: RunContext):
    return ctx.shared("data", lambda: load_data(ctx.config, ctx.seed))


def _tokenizers(ctx: RunContext):
    train, _ = _data(ctx)
    return ctx.shared(
        "tokenizers", lambda: build_tokenizers(ctx.config, ctx.seed, train, ctx.progress)
    )


# ---------------------------------------------------------------------------------------------
# (1) reconstruction vs number of tokens


def run_reconstruction(ctx: RunContext) -> dict[str, float]:
    cfg: TiTokClaimsConfig = ctx.config
    _, test = _data(ctx)
    tokenizers = _tokenizers(ctx)
    m: dict[str, float] = {}
    with torch_threads(cfg.threads):
        for name, t in tokenizers.items():
            m[f"mse_{name}"] = reconstruction_mse(t.model, test.images)
            ids = t.model.encode(test.images)
            m[f"usage_{name}"] = ids.unique().numel() / cfg.codebook_size
            m[f"train_seconds_{name}"] = t.seconds
    k_min, k_max = min(cfg.token_counts), max(cfg.token_counts)
    same = grid_name(cfg, cfg.grid_patch_sizes[0])
    m["mse_ratio_kmin_over_kmax"] = m[f"mse_{titok_name(k_min)}"] / m[f"mse_{titok_name(k_max)}"]
    m["mse_ratio_titok_over_grid"] = m[f"mse_{titok_name(k_max)}"] / m[f"mse_{same}"]
    mses = [m[f"mse_{titok_name(k)}"] for k in sorted(cfg.token_counts)]
    m["monotone_steps"] = float(sum(b <= a for a, b in zip(mses, mses[1:], strict=False)))
    ctx.notes["restart_usage"] = {n: t.history.get("usage", []) for n, t in tokenizers.items()}
    plot_reconstruction(ctx, cfg, tokenizers, test, m)
    return m


# ---------------------------------------------------------------------------------------------
# (2) linear probe on the latents


def run_linear_probe(ctx: RunContext) -> dict[str, float]:
    cfg: TiTokClaimsConfig = ctx.config
    train, test = _data(ctx)
    tokenizers = _tokenizers(ctx)
    x_train, y_train = train.images[: cfg.probe_train], train.labels[: cfg.probe_train]
    m: dict[str, float] = {}
    with torch_threads(cfg.threads):
        for name, t in tokenizers.items():
            f_train = pooled_latents(t.model, x_train)
            f_test = pooled_latents(t.model, test.images)
            m[f"probe_acc_{name}"] = linear_probe(f_train, y_train, f_test, test.labels)
    ks = sorted(cfg.token_counts)
    accs = [m[f"probe_acc_{titok_name(k)}"] for k in ks]
    m["probe_gain_kmin_minus_kmax"] = accs[0] - accs[-1]
    m["probe_rank_corr"] = _spearman(ks, accs)
    m["chance"] = 1.0 / train.num_classes
    plot_probe(ctx, cfg, m)
    return m


def _spearman(x: list[float], y: list[float]) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    if len(x) < 2 or np.std(rx) == 0 or np.std(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


# ---------------------------------------------------------------------------------------------
# (3) generation speed at comparable FD


def _sampler(cfg: TiTokClaimsConfig, name: str, gen, tok):
    kind = name.split("_")[0]
    kw = {"cfg_scale": cfg.cfg_scale}
    if kind == "maskgit":
        kw |= dict(
            num_steps=cfg.num_steps,
            schedule=cfg.schedule,
            randomness_temperature=cfg.randomness_temperature,
        )

    def sample(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return tok.decode_indices(gen.generate(labels, generator=g, **kw))

    return sample


def run_generation(ctx: RunContext) -> dict[str, float]:
    cfg: TiTokClaimsConfig = ctx.config
    train, test = _data(ctx)
    tokenizers = _tokenizers(ctx)
    generators, judge = ctx.shared(
        "generators",
        lambda: build_generators(cfg, ctx.seed, train, test, tokenizers, ctx.progress),
    )
    source = {
        "titok": tokenizers[titok_name(cfg.gen_tokens)].model,
        "grid": tokenizers[grid_name(cfg, cfg.gen_grid_patch)].model,
    }
    order = ("maskgit_titok", "maskgit_grid", "ar_titok", "ar_grid")
    samplers = {n: _sampler(cfg, n, generators[n].model, source[n.split("_")[1]]) for n in order}
    m: dict[str, float] = {}
    with torch_threads(cfg.threads):
        labels = torch.arange(cfg.timing_batch) % train.num_classes
        timings = time_interleaved(samplers, [labels], cfg.timing_reps)
        samples = {}
        for name, sample in samplers.items():
            m[f"images_per_s_{name}"] = cfg.timing_batch / timings.median(name)
            samples[name] = _draw(sample, cfg, train.num_classes)
            y = torch.arange(cfg.n_samples) % train.num_classes
            score = judge.score(samples[name], y)
            m[f"fd_{name}"], m[f"class_acc_{name}"] = score["fd"], score["class_acc"]
            m[f"train_seconds_{name}"] = generators[name].seconds
        for src, tok in source.items():  # the tokenizers' own ceiling: FD of reconstructions
            m[f"fd_recon_{src}"] = judge.fd(tok.reconstruct(test.images[: cfg.n_samples]))
        m["fd_real"] = judge.fd(train.images[-cfg.n_samples :])  # real images never judged on
    for kind in ("maskgit", "ar"):
        m[f"speedup_{kind}"] = m[f"images_per_s_{kind}_titok"] / m[f"images_per_s_{kind}_grid"]
        m[f"fd_ratio_{kind}"] = m[f"fd_{kind}_titok"] / max(m[f"fd_{kind}_grid"], 1e-9)
    m["judge_test_accuracy"] = judge.test_accuracy
    plot_generation(ctx, cfg, m, samples, train.num_classes)
    return m


def _draw(sample, cfg: TiTokClaimsConfig, num_classes: int) -> torch.Tensor:
    """cfg.n_samples class-balanced samples, in timing-sized batches (seeded per batch)."""
    y = torch.arange(cfg.n_samples) % num_classes
    return torch.cat([sample(b, seed=i) for i, b in enumerate(y.split(cfg.timing_batch))])


# ---------------------------------------------------------------------------------------------

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
