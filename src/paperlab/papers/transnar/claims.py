"""TransNAR's claims in miniature (Bounsi et al. 2024, arXiv 2406.09308).

(1) nar_ood: the premise — a NAR trained on the graph form of small inputs stays accurate on
    larger ones (Sec. 1; Ibarz et al. 2022).
(2) in_distribution: TransNAR scores at least as well as the transformer-only baseline on
    CLRS-Text inputs of the training sizes (Fig. 4-5, in-distribution panels).
(3) out_of_distribution: TransNAR beats the baseline on larger inputs, and its gain there is
    larger than in distribution (Fig. 1, Fig. 4-5).

One run trains the NAR (phase 1), then TransNAR and the baseline (phase 2), and scores greedy
decodes of held-out instances at every eval size; the three claims share it (the runs are in
``paperlab.papers.transnar.experiments``).
"""

from __future__ import annotations

from dataclasses import dataclass

from paperlab.claims import Claim, PaperClaims, all_of, at_least
from paperlab.papers.transnar.clrs import ALGORITHMS
from paperlab.papers.transnar.experiments import (
    run_in_distribution,
    run_nar_ood,
    run_out_of_distribution,
)


def longest_text(algo: str, n: int) -> int:
    """An upper bound on BOS + question + answer characters for ``algo`` at size ``n``."""
    if algo == "bfs":
        return 40 + n * (2 * n + 2) + 3 * n
    if algo == "dijkstra":
        return 40 + n * (6 * n + 2) + 3 * n
    return 40 + 12 * n


@dataclass
class TransNARClaimsConfig:
    algorithms: tuple[str, ...] = ALGORITHMS
    train_sizes: tuple[int, ...] = (4, 5, 6, 7, 8)
    eval_sizes: tuple[int, ...] = (4, 6, 8, 12, 16)  # > max(train_sizes): out of distribution
    workers: int = 2  # processes for the two phase-2 trainings (1 = in this process)
    threads: int = 1
    # phase 1: the NAR (Triplet-GMPNN) on the graph form
    nar_hidden: int = 32
    triplet_dim: int = 8
    nar_pool: int = 1000  # training graphs per algorithm
    nar_steps: int = 300
    nar_batch: int = 32
    nar_lr: float = 3e-3
    # phase 2: the transformer on CLRS-Text (same for TransNAR and the baseline)
    n_train: int = 4000  # training texts, algorithms round-robin
    n_eval: int = 16  # held-out texts per algorithm and eval size
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    ffn_hidden: int = 128
    steps: int = 400
    batch_size: int = 16
    lr: float = 2e-3
    randomized_positions: bool = True  # Ruoss et al. 2023, as TransNAR uses
    max_position: int = 2048  # >= the longest possible eval text (Dijkstra, all edges)

    def __post_init__(self) -> None:
        bad = [a for a in self.algorithms if a not in ALGORITHMS]
        if not self.algorithms or bad:
            raise ValueError(f"algorithms={bad or '()'}: choose from {', '.join(ALGORITHMS)}")
        if not self.train_sizes or min(self.train_sizes) < 2:
            raise ValueError("train_sizes must be node counts >= 2, e.g. 4,5,6,7,8")
        top = max(self.train_sizes)
        if not any(n <= top for n in self.eval_sizes) or not any(n > top for n in self.eval_sizes):
            raise ValueError(
                f"eval_sizes needs sizes <= {top} and > {top} (in and out of "
                f"distribution), got {self.eval_sizes}"
            )
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"dim={self.dim} must split into n_heads={self.n_heads} even heads")
        positive = (
            "nar_hidden",
            "triplet_dim",
            "nar_pool",
            "nar_steps",
            "nar_batch",
            "n_train",
            "n_eval",
            "n_layers",
            "steps",
            "batch_size",
            "workers",
            "threads",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        need = max(longest_text(a, n) for a in self.algorithms for n in self.eval_sizes) + 8
        if self.max_position < need:
            raise ValueError(
                f"max_position={self.max_position} is below the longest eval text "
                f"({need} tokens); raise it or drop large eval_sizes"
            )

    @property
    def ood_sizes(self) -> tuple[int, ...]:
        return tuple(n for n in self.eval_sizes if n > max(self.train_sizes))

    @property
    def id_sizes(self) -> tuple[int, ...]:
        return tuple(n for n in self.eval_sizes if n <= max(self.train_sizes))


# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost)
NAR_OOD_RATIO = 0.8  # NAR accuracy out of distribution >= 0.8 x in distribution
NAR_OOD_MARGIN = 0.1  # ratios within this of NAR_OOD_RATIO are too close to call
ID_TOLERANCE = 0.02  # TransNAR's in-distribution CLRS score >= baseline's (within: inconclusive)
OOD_GAIN = 0.05  # TransNAR's OOD CLRS score - baseline's, at least
OOD_MARGIN = 0.03  # gains within this of OOD_GAIN are too close to call

PRESETS = {
    "tiny": dict(
        train_sizes=(4, 5),
        eval_sizes=(4, 6),
        workers=1,
        nar_hidden=16,
        triplet_dim=4,
        nar_pool=32,
        nar_steps=8,
        nar_batch=8,
        n_train=48,
        n_eval=2,
        dim=32,
        n_layers=1,
        n_heads=2,
        ffn_hidden=64,
        steps=6,
        batch_size=4,
        max_position=320,
    ),
    "default": {},
    "full": dict(
        nar_hidden=128,
        triplet_dim=8,
        nar_pool=10000,
        nar_steps=10000,
        n_train=100000,
        n_eval=100,
        dim=256,
        n_layers=6,
        n_heads=8,
        ffn_hidden=768,
        steps=20000,
        batch_size=64,
        lr=5e-4,
    ),
}


PAPER = PaperClaims(
    config=TransNARClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="nar_ood",
            statement="A NAR trained on the graph form of small inputs stays accurate on "
            "larger inputs (the premise of TransNAR)",
            paper_figure="Sec. 1 / Ibarz et al. 2022: Triplet-GMPNN trained on n=16 keeps "
            "high CLRS-30 accuracy at n=64",
            criterion=at_least("nar_ood_over_id", NAR_OOD_RATIO, margin=NAR_OOD_MARGIN),
            run=run_nar_ood,
            ours="NAR accuracy {nar_acc_id:.2f} in distribution, {nar_acc_ood:.2f} out "
            "(ratio {nar_ood_over_id:.2f})",
        ),
        Claim(
            id="in_distribution",
            statement="TransNAR scores at least as well as the transformer-only baseline on "
            "CLRS-Text inputs of the training sizes",
            paper_figure="Fig. 4-5: TransNAR >= Transformer on most CLRS-Text algorithms in "
            "distribution (CLRS score)",
            criterion=at_least("clrs_gain_id", 0.0, margin=ID_TOLERANCE),
            run=run_in_distribution,
            ours="CLRS score {clrs_transnar_id:.3f} vs baseline {clrs_baseline_id:.3f}; "
            "shape {shape_transnar_id:.2f} vs {shape_baseline_id:.2f}",
        ),
        Claim(
            id="out_of_distribution",
            statement="TransNAR beats the transformer-only baseline on larger inputs than "
            "trained on, and its gain there exceeds its in-distribution gain",
            paper_figure="Fig. 1, 4-5: out of distribution TransNAR gains over 20% (CLRS "
            "score) on many algorithms; the gap is largest OOD",
            criterion=all_of(
                at_least("clrs_gain_ood", OOD_GAIN, margin=OOD_MARGIN),
                at_least("ood_minus_id_gain", 0.0),
            ),
            run=run_out_of_distribution,
            ours="OOD CLRS score {clrs_transnar_ood:.3f} vs baseline {clrs_baseline_ood:.3f} "
            "(gain {clrs_gain_ood:+.3f}, in-dist gain {clrs_gain_id:+.3f}); OOD shape "
            "{shape_transnar_ood:.2f} vs {shape_baseline_ood:.2f}",
        ),
    ],
)
