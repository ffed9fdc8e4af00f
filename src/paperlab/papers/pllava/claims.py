"""PLLaVA's claims in miniature (Xu, Zhao, Zhou, Lin, Ng, Feng 2024, arXiv 2404.16994).

Powering (every claim): the image-LLM must answer single-image questions (colour, shape,
quadrant) well above chance before its video extension is judged: ``image_acc`` is recorded
with every claim, and below ``POWER_IMAGE`` the claim is inconclusive.

(1) pooling_data: as the video training data grows, the n-frame baseline (every frame's tokens,
    no pooling) saturates or degrades while adaptive pooling keeps improving and ends ahead
    (Sec. 3: the failure analysis of n-frame tuning, and the pooling design).
(2) dominant_tokens: tuning without pooling lets a few visual tokens grow very large norms
    (Sec. 3, dominant high-norm tokens): the max/median token-norm ratio grows more without pooling.
(3) answer_length: the n-frame model's answers get shorter (Sec. 3): caption length,
    unpooled vs pooled.
(4) lora_alpha: lowering LoRA's alpha at evaluation (training 32 -> 4, mixing the image
    model's weights back in) improves the captioning score (the paper's post-training
    optimization of the LoRA weight).
(5) spatial_vs_temporal: at an equal token budget, spatial pooling beats temporal pooling
    (the paper's ablation of pooling shapes).

Claims 1-3 share the same runs (pooled and unpooled, ``seeds`` seeds); claim 5 adds a
temporally pooled run per seed; claim 4 re-evaluates the pooled runs at several alphas. Gaps
are judged against a noise band of 2 standard errors (over seeds and test clips), fixed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from paperlab.claims import Claim, PaperClaims, custom
from paperlab.papers.pllava import experiments


@dataclass
class PLLaVAClaimsConfig:
    # the image-LLM (LLaVA's role): ViT -> projector -> Llama over bytes
    image_size: int = 16
    patch_size: int = 4  # 4x4 grid of patch tokens per frame (the paper: 24x24)
    vit_dim: int = 64
    vit_depth: int = 2
    vit_heads: int = 4
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    image_train: int = 2000  # images, 4 questions each
    image_test: int = 200
    vision_steps: int = 200  # encoder pre-training (CLIP's stand-in), batches of 64
    image_steps: int = 300
    image_lr: float = 3e-3
    batch_size: int = 16
    # the video extension
    num_frames: int = 8  # frames sampled per clip (the paper: 16)
    raw_frames: int = 16  # frames per procedural clip
    video_train: int = 1200  # clips in the training pool
    video_test: int = 150  # held-out clips (a third per task)
    caption_frac: float = 0.25  # share of motion clips asked for their caption in training
    lora_r: int = 8  # the paper: 128
    lora_alpha: float = 2.0  # the paper's 32 at r 128 (alpha/r = 1/4 kept)
    eval_alphas: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0)  # in the paper's units (r = 128)
    video_steps: int = 300
    video_lr: float = 1e-2  # the paper: 2e-5 at 7B-34B
    evals: int = 4  # evaluations along the training (the "data grows" axis)
    spatial_pool: tuple[int, int, int] = (8, 2, 2)  # T x h x w after pooling: 32 tokens
    temporal_pool: tuple[int, int, int] = (2, 4, 4)  # the same 32 tokens, pooled in time
    seeds: int = 3
    threads: int = 1  # torch threads (tiny matrices: one thread wastes the least CPU)

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size={self.patch_size} must divide image_size")
        if self.image_size < 8:
            raise ValueError(f"image_size={self.image_size} must be >= 8")
        for name in ("vit_dim", "dim", "image_train", "image_test", "image_steps", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("video_train", "video_test", "video_steps", "batch_size", "evals"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.video_test < 6:
            raise ValueError(f"video_test={self.video_test} must be >= 6 (every task, twice)")
        if not 1 <= self.num_frames <= self.raw_frames or self.raw_frames < 15:
            raise ValueError(
                f"num_frames={self.num_frames} must be in 1..raw_frames and raw_frames="
                f"{self.raw_frames} >= 15"
            )
        grid = self.image_size // self.patch_size
        for name in ("spatial_pool", "temporal_pool"):
            t, h, w = getattr(self, name)
            if not (1 <= t <= self.num_frames and 1 <= h <= grid and 1 <= w <= grid):
                raise ValueError(f"{name}={getattr(self, name)} must fit (num_frames, grid, grid)")
        if not 0.0 <= self.caption_frac <= 1.0:
            raise ValueError(f"caption_frac={self.caption_frac} must be in [0, 1]")
        if self.lora_r < 1 or self.lora_alpha <= 0 or min(self.eval_alphas, default=0) <= 0:
            raise ValueError("lora_r >= 1, lora_alpha > 0 and eval_alphas > 0 please")
        if min(self.image_lr, self.video_lr) <= 0:
            raise ValueError("image_lr and video_lr must be > 0")
        if self.seeds < 1:
            raise ValueError(f"seeds={self.seeds} must be >= 1")


# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost)
POWER_IMAGE = 0.8  # image-LLM's mean single-image accuracy (chance 0.28)
MIN_GAP = 0.03  # the smallest accuracy gap called a difference
NORM_GROWTH = 1.1  # "grows": the max/median norm ratio rises by >= 10% over its pooled peer's
LENGTH_DROP = 0.1  # "shorter": >= 10% fewer bytes than the pooled model's captions
MIN_SCORE_GAIN = 0.02  # caption score gain of a lower alpha over the training alpha
TRAIN_ALPHA_PAPER = 32.0  # the training alpha in the paper's units

PRESETS = {
    "tiny": dict(
        vit_dim=16,
        vit_depth=1,
        vit_heads=2,
        dim=16,
        n_layers=1,
        n_heads=2,
        image_train=40,
        image_test=8,
        vision_steps=4,
        image_steps=4,
        batch_size=4,
        video_train=12,
        video_test=6,
        video_steps=4,
        evals=2,
        eval_alphas=(4.0, 32.0),
        seeds=1,
    ),
    "default": {},
    "full": dict(
        vit_dim=128,
        dim=128,
        n_layers=4,
        image_train=6000,
        vision_steps=1000,
        image_steps=3000,
        video_train=6000,
        video_test=600,
        video_steps=2000,
        num_frames=16,
        spatial_pool=(16, 2, 2),
        temporal_pool=(4, 4, 4),
        evals=8,
        seeds=3,
    ),
}

PAPER = PaperClaims(
    config=PLLaVAClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="pooling_data",
            statement="As video training data grows, the unpooled n-frame model saturates or "
            "degrades while the pooled model keeps improving and ends ahead",
            paper_figure="n-frame MVBench falls as data grows, PLLaVA keeps rising; 34B: "
            "MVBench 58.1%, VideoChatGPT 3.48",
            criterion=custom(
                f"pooled - unpooled final accuracy >= max(2 s.e., {MIN_GAP}) and the unpooled "
                "model gains less over the second half of training: holds; gap <= -band: "
                f"fails; image_acc < {POWER_IMAGE}: inconclusive",
                partial(experiments.judge_pooling_data, power=POWER_IMAGE, min_gap=MIN_GAP),
            ),
            run=experiments.run_pooling_data,
            ours="pooled {acc_pool:.3f} vs unpooled {acc_nopool:.3f} (late gain "
            "{late_gain_pool:+.3f} vs {late_gain_nopool:+.3f}); image-LLM {image_acc:.3f}",
        ),
        Claim(
            id="dominant_tokens",
            statement="Tuning without pooling grows a few visual tokens with very large norms",
            paper_figure="a few n-frame visual tokens reach norms far above the rest",
            criterion=custom(
                f"unpooled max/median norm ratio grows by >= {NORM_GROWTH}x its pooled peer's "
                "growth during tuning: holds; grows less than the pooled one's: fails",
                partial(experiments.judge_dominant, power=POWER_IMAGE, growth=NORM_GROWTH),
            ),
            run=experiments.run_dominant_tokens,
            ours="max/median norm: unpooled {ratio0_nopool:.2f} -> {ratio_nopool:.2f}, pooled "
            "{ratio0_pool:.2f} -> {ratio_pool:.2f}",
        ),
        Claim(
            id="answer_length",
            statement="The unpooled n-frame model's answers get shorter than the pooled model's",
            paper_figure="the n-frame model's answers are shorter",
            criterion=custom(
                f"unpooled captions >= {LENGTH_DROP:.0%} shorter than pooled ones: holds; not "
                "shorter: fails",
                partial(experiments.judge_length, power=POWER_IMAGE, drop=LENGTH_DROP),
            ),
            run=experiments.run_answer_length,
            ours="caption bytes: unpooled {len_nopool:.1f}, pooled {len_pool:.1f} (reference "
            "{len_ref:.1f})",
        ),
        Claim(
            id="lora_alpha",
            statement="Lowering LoRA's alpha at evaluation (mixing the image model back in) "
            "improves the caption score over the training alpha",
            paper_figure="alpha 32 -> 4 at evaluation raises the VideoChatGPT score",
            criterion=custom(
                f"best caption score at alpha < {TRAIN_ALPHA_PAPER:g} - score at "
                f"{TRAIN_ALPHA_PAPER:g} >= max(2 s.e., {MIN_SCORE_GAIN}): holds; <= 0: fails",
                partial(
                    experiments.judge_alpha,
                    power=POWER_IMAGE,
                    min_gain=MIN_SCORE_GAIN,
                    train_alpha=TRAIN_ALPHA_PAPER,
                ),
            ),
            run=partial(experiments.run_lora_alpha, train_alpha=TRAIN_ALPHA_PAPER),
            ours="caption score by alpha: {alpha_text}; QA acc {acc_alpha_text}",
        ),
        Claim(
            id="spatial_vs_temporal",
            statement="At the same token budget, spatial pooling beats temporal pooling",
            paper_figure="pooling the temporal axis lowers the MVBench and VideoChatGPT scores",
            criterion=custom(
                f"spatial - temporal accuracy >= max(2 s.e., {MIN_GAP}): holds; <= -band: fails",
                partial(experiments.judge_spatial, power=POWER_IMAGE, min_gap=MIN_GAP),
            ),
            run=experiments.run_spatial_vs_temporal,
            ours="spatial {acc_spatial:.3f} vs temporal {acc_temporal:.3f} (count "
            "{acc_count_spatial:.2f} vs {acc_count_temporal:.2f})",
        ),
    ],
)
