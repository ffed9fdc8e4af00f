"""PiT's claims in miniature (Nguyen, Assran, Jain, Oswald, Snoek, Chen 2024, arXiv 2406.09415).

(1) pixels_vs_patches: at equal width and depth, pixel tokens classify at least as well as
    2x2 and 4x4 patch tokens (Sec. 4.1, Tables 2-3: PiT > ViT on CIFAR-100 and ImageNet 28px).
(2) pixel_permutation: one fixed random shuffle of the pixels (train and test alike) leaves PiT
    with learned positions unaffected - it is the same problem up to the order of its tokens -
    while patch ViTs lose the locality their patches carry (Sec. 6, pixel permutations).
(3) position_embedding: learned and fixed 2D sin-cos positions perform alike for PiT; without
    any position PiT sees a bag of pixels (reported, and contrasted with a patch ViT).
(4) mae: MAE pre-training on pixel tokens (75% of the pixels masked) helps PiT's fine-tuning
    over training from scratch with the same fine-tuning budget (Sec. 4.2).

Every figure is a mean +- std over ``seeds`` seeds (different initialisation and batch order,
same data); criteria compare the gap between means with a band of 2 standard errors, fixed
here before the runs. The experiments are in ``experiments.py`` (the trainings in ``runs.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from paperlab.claims import Claim, PaperClaims, Verdict, custom
from paperlab.core.data.images import DATASETS
from paperlab.papers.pit import experiments


@dataclass
class PiTClaimsConfig:
    datasets: tuple[str, ...] = ("digits", "shapes")  # claim 1
    perm_dataset: str = "digits"  # claim 2
    pos_dataset: str = "digits"  # claim 3
    mae_dataset: str = "digits"  # claim 4
    patch_sizes: tuple[int, ...] = (2, 4)  # the patch ViTs next to PiT (patch 1)
    seeds: int = 3
    workers: int = 2  # processes for the independent trainings (1 = in this process)
    threads: int = 1  # torch threads per process
    digits_test: int = 360  # of the 1797 8x8 digits
    shapes_size: int = 16  # px: 256 pixel tokens
    shapes_train: int = 2000
    shapes_test: int = 500
    dim: int = 32  # the same width and depth for every model
    depth: int = 2
    n_heads: int = 2
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    digits_steps: int = 600
    shapes_steps: int = 300
    perm_seed: int = 0  # the one fixed pixel permutation of claim 2
    mae_steps: int = 600
    mae_lr: float = 1e-3
    mask_ratio: float = 0.75
    decoder_dim: int = 32
    decoder_depth: int = 1

    def __post_init__(self) -> None:
        for name in (*self.datasets, self.perm_dataset, self.pos_dataset, self.mae_dataset):
            if name not in DATASETS:
                raise ValueError(f"dataset {name!r}: choose from {', '.join(DATASETS)}")
        if not self.datasets:
            raise ValueError("datasets must name at least one of digits, shapes")
        if self.seeds < 2:
            raise ValueError(f"seeds={self.seeds}: need >= 2 seeds for a spread (3+ advised)")
        if self.shapes_size < 4:
            raise ValueError(f"shapes_size={self.shapes_size} must be >= 4")
        for p in self.patch_sizes:
            if p < 2 or 8 % p or self.shapes_size % p:
                raise ValueError(
                    f"patch_sizes: {p} must be >= 2 and divide both 8 (digits) "
                    f"and shapes_size={self.shapes_size}"
                )
        if not self.patch_sizes:
            raise ValueError("patch_sizes must name at least one patch size, e.g. 2,4")
        if self.dim % self.n_heads or self.decoder_dim % self.n_heads:
            raise ValueError(
                f"dim={self.dim} and decoder_dim={self.decoder_dim} must be "
                f"divisible by n_heads={self.n_heads}"
            )
        if self.dim % 4 or self.decoder_dim % 4:
            raise ValueError("dim and decoder_dim must be divisible by 4 (2D sin-cos positions)")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio={self.mask_ratio} must be in (0, 1)")
        steps = (self.digits_steps, self.shapes_steps, self.mae_steps, self.batch_size)
        if min(steps) < 1 or min(self.depth, self.decoder_depth) < 1:
            raise ValueError("steps, batch_size and depths must be >= 1")
        if not 1 < self.digits_test < 1797 or min(self.shapes_train, self.shapes_test) < 1:
            raise ValueError("digits_test must be in 2..1796; shapes_train/test >= 1")
        if min(self.lr, self.mae_lr) <= 0 or self.weight_decay < 0:
            raise ValueError("lr and mae_lr must be > 0, weight_decay >= 0")


# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost)
MIN_BAND = 0.01  # the smallest noise band on an accuracy gap (2 s.e. can be ~0 by luck)
MIN_DROP = 0.02  # a patch ViT must lose at least this much accuracy under the permutation
POS_TOL = 0.02  # learned vs sin-cos: "alike" = gap within max(2 s.e., this)

PRESETS = {
    "tiny": dict(
        workers=1,
        shapes_size=8,
        shapes_train=120,
        shapes_test=60,
        dim=16,
        depth=1,
        digits_steps=12,
        shapes_steps=8,
        mae_steps=8,
        decoder_dim=16,
    ),
    "default": {},
    "full": dict(
        seeds=5,
        shapes_train=10000,
        shapes_test=2000,
        dim=64,
        depth=4,
        n_heads=4,
        digits_steps=3000,
        shapes_steps=3000,
        mae_steps=3000,
        decoder_dim=64,
        decoder_depth=2,
    ),
}


# ---------------------------------------------------------------------------------------------
# (1) PiT vs ViT-p2 / ViT-p4 at equal width and depth


def _judge_not_worse(m: Mapping[str, float]) -> tuple[Verdict, str]:
    gaps = {k[: -len("_gap")]: v for k, v in m.items() if k.endswith("_gap") and k != "worst_gap"}
    text = "; ".join(
        f"{d}: PiT - best patch ViT = {g:+.3f} (band {m[f'{d}_band']:.3f})" for d, g in gaps.items()
    )
    if any(g < -m[f"{d}_band"] for d, g in gaps.items()):
        return "fails", text + " -> PiT below a patch ViT beyond noise"
    if all(g >= 0 for g in gaps.values()):
        return "holds", text
    return "inconclusive", text + " -> PiT below, within noise"


# ---------------------------------------------------------------------------------------------
# (2) a fixed pixel permutation


def _judge_permutation(m: Mapping[str, float]) -> tuple[Verdict, str]:
    pit, pit_band = m["drop_pit"], m["band_pit"]
    vits = sorted(k[len("drop_") :] for k in m if k.startswith("drop_vit"))
    text = f"PiT drop {pit:+.3f} (band {pit_band:.3f}); " + "; ".join(
        f"{v} drop {m[f'drop_{v}']:+.3f} (band {m[f'band_{v}']:.3f})" for v in vits
    )
    need = {v: max(m[f"band_{v}"], MIN_DROP) for v in vits}
    if abs(pit) > pit_band or any(m[f"drop_{v}"] <= 0 for v in vits):
        return "fails", text
    if all(m[f"drop_{v}"] >= need[v] for v in vits):
        return "holds", text
    return "inconclusive", text + f" -> a patch ViT drops, but by less than max(band, {MIN_DROP})"


# ---------------------------------------------------------------------------------------------
# (3) position embeddings


def _judge_positions(m: Mapping[str, float]) -> tuple[Verdict, str]:
    gap, tol = m["learned_minus_sincos"], m["learned_sincos_band"]
    text = f"PiT learned - sin-cos = {gap:+.3f} (alike within {tol:.3f})"
    return ("holds" if abs(gap) <= tol else "fails"), text


# ---------------------------------------------------------------------------------------------
# (4) MAE pre-training


def _judge_gain(m: Mapping[str, float]) -> tuple[Verdict, str]:
    gain, b = m["gain"], m["band"]
    text = f"fine-tuned after MAE - from scratch = {gain:+.3f} (band {b:.3f})"
    if gain <= 0:
        return "fails", text
    return ("holds" if gain >= b else "inconclusive"), text


# ---------------------------------------------------------------------------------------------

PAPER = PaperClaims(
    config=PiTClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="pixels_vs_patches",
            statement="At equal width and depth, a transformer on individual pixels classifies "
            "at least as well as the same transformer on 2x2 or 4x4 patches",
            paper_figure="Tables 2-3 (not re-verified here): PiT beats ViT by >2% on "
            "CIFAR-100 and on ImageNet at 28x28; accuracy rises as the patch shrinks 8 -> 1",
            criterion=custom(
                "per dataset, mean acc(PiT) - best mean acc(ViT-p) >= 0 holds; "
                f"< -max(2 s.e., {MIN_BAND}) fails; else inconclusive",
                _judge_not_worse,
            ),
            run=partial(experiments.run_pixels_vs_patches, min_band=MIN_BAND),
            ours="digits PiT {acc_digits_pit:.3f}±{std_digits_pit:.3f} vs p2 "
            "{acc_digits_vit_p2:.3f}, p4 {acc_digits_vit_p4:.3f}; shapes PiT "
            "{acc_shapes_pit:.3f}±{std_shapes_pit:.3f} vs p2 {acc_shapes_vit_p2:.3f}, p4 "
            "{acc_shapes_vit_p4:.3f}",
        ),
        Claim(
            id="pixel_permutation",
            statement="A fixed random permutation of the pixels leaves PiT (learned positions) "
            "unaffected and hurts patch ViTs, whose patches carry locality",
            paper_figure="Sec. 6: pixel permutations hurt ViT more the farther pixels move; "
            "PiT is equivariant to any fixed permutation",
            criterion=custom(
                f"|drop(PiT)| <= max(2 s.e., {MIN_BAND}) and every patch ViT "
                f"drops >= max(2 s.e., {MIN_DROP}) (drop in (0, that): "
                "inconclusive)",
                _judge_permutation,
            ),
            run=partial(experiments.run_pixel_permutation, min_band=MIN_BAND),
            ours="accuracy drop under permutation: PiT {drop_pit:+.3f}, ViT-p2 "
            "{drop_vit_p2:+.3f}, ViT-p4 {drop_vit_p4:+.3f}",
        ),
        Claim(
            id="position_embedding",
            statement="Learned and fixed sin-cos position embeddings perform alike for PiT "
            "(without positions PiT is a bag of pixels: reported)",
            paper_figure="Position-embedding variants differ little (card; not re-verified)",
            criterion=custom(
                f"|acc(learned) - acc(sin-cos)| <= max(2 s.e., {POS_TOL})", _judge_positions
            ),
            run=partial(experiments.run_position_embedding, min_band=MIN_BAND, pos_tol=POS_TOL),
            ours="PiT learned {acc_pit:.3f}±{std_pit:.3f}, sin-cos "
            "{acc_pit_sincos:.3f}±{std_pit_sincos:.3f}, none {acc_pit_none:.3f}; ViT-p2 "
            "learned {acc_vit_p2:.3f}, none {acc_vit_p2_none:.3f}",
        ),
        Claim(
            id="mae",
            statement="MAE pre-training with pixel tokens (75% masked) helps PiT's fine-tuning "
            "over training from scratch with the same fine-tuning budget",
            paper_figure="Sec. 4.2: PiT-MAE fine-tunes better than from scratch and than "
            "ViT-MAE on CIFAR-100 / ImageNet 28px",
            criterion=custom(
                f"gain > 0 and >= max(2 s.e., {MIN_BAND}) holds; <= 0 fails", _judge_gain
            ),
            run=partial(experiments.run_mae, min_band=MIN_BAND),
            ours="fine-tuned after MAE {acc_pit_mae:.3f}±{std_pit_mae:.3f} vs scratch "
            "{acc_pit:.3f}±{std_pit:.3f} (gain {gain:+.3f})",
        ),
    ],
)
