"""MTP's four claims in miniature (Gloeckle et al. 2024, arXiv 2404.19737).

(1) Self-speculative decoding with the extra heads is faster than plain greedy decoding of the
    same model and gives the identical output (Sec. 3.2: ~3x on code at 7B, 6.4x for bytes);
    (1b) the same with sampling (our extension: the speculative-sampling rule on the heads'
    drafts keeps head 1's distribution). Both are judged only on text that passes the quality
    floor (distinct-4 >= QUALITY_FLOOR): a speed-up on a loop is not powered.
(2) The memory-efficient schedule keeps peak training memory near next-token training instead
    of growing with n (Sec. 2, Fig. 2: O(nV + d) -> O(V + d)).
(3) Multi-token training helps induction form in small models (Sec. 4.1, Fig. 7).
(4) At small scale multi-token training does not improve next-token loss (Sec. 3.1, Fig. 3:
    the benefits appear with scale; small models get worse).

Claims 1 and 4 use byte-level models trained on the Python standard library (the corpus of
`paperlab.core.data.text`); they share the trained models through the run's artifact cache
(disk-cached). The runs are in ``experiments.py``, the figures in ``plots.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from paperlab.claims import Claim, PaperClaims, all_of, at_least, at_most, custom
from paperlab.core.lm import DecodeTarget
from paperlab.core.text_quality import quality_gated
from paperlab.papers.mtp import experiments

# claim 3: "learned to copy" = head-1 accuracy on the copy half >= this (fixed before the runs)
INDUCTION_THRESHOLD = 0.5
# claims 1 and 1b: the decoded continuations' mean distinct-4-gram ratio must reach this floor
QUALITY_FLOOR = 0.5
_TARGET = DecodeTarget()  # the shared decoding target's size and recipe (core.lm)


@dataclass
class MTPClaimsConfig:
    # byte-level models on the stdlib corpus (claims 1 and 4); NTP = n_future 1
    # the shared decoding target's fields (core.lm.DecodeTarget): n = 1 is that target
    dim: int = _TARGET.dim
    n_layers: int = _TARGET.n_layers  # total decoder layers L; n heads leave L - n trunk layers
    n_heads: int = _TARGET.n_heads
    n_future: int = 4
    seq_len: int = _TARGET.seq_len
    batch_size: int = _TARGET.batch_size
    steps: int = _TARGET.steps
    lr: float = _TARGET.lr
    val_batches: int = 8
    # (1) self-speculative decoding; prompt + new tokens stay within the trained seq_len
    prompts: int = 4
    prompt_len: int = 32
    new_tokens: int = 96
    reps: int = 3
    decode_threads: int = 1  # torch threads while timing batch-1 decoding (0 = torch's default)
    sample_temperature: float = 0.9  # (1b) sampled decoding, in the 0.8-1.0 range
    # (2) peak memory of one training step, each in a fresh process
    mem_vocab: int = 32768  # large, so that logits dominate as in real LLMs
    mem_dim: int = 64
    mem_layers: int = 8
    mem_batch: int = 4
    mem_seq_len: int = 128
    mem_futures: tuple[int, ...] = (1, 2, 4)
    # (3) induction / copy task
    ind_futures: tuple[int, ...] = (1, 2)
    ind_seeds: int = 2  # runs per n (seeds seed, seed + 1, ...)
    ind_layers: int = 4
    ind_dim: int = 64
    ind_vocab: int = 32
    ind_min_len: int = 4
    ind_max_len: int = 12
    ind_steps: int = 300
    ind_batch: int = 32
    ind_lr: float = 3e-3
    ind_eval_every: int = 20
    ind_loss_on_prefix: bool = True

    def __post_init__(self) -> None:
        if self.n_future < 2 or self.n_future > self.n_layers:
            raise ValueError(f"n_future={self.n_future} must be in 2..n_layers={self.n_layers}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"dim={self.dim} must split into n_heads={self.n_heads} even heads")
        if self.prompt_len + self.new_tokens + self.n_future > 1024:
            raise ValueError("prompt_len + new_tokens + n_future must be <= 1024 (max_seq_len)")
        if self.sample_temperature <= 0:
            raise ValueError(f"sample_temperature={self.sample_temperature} must be > 0")
        if min(self.steps, self.prompts, self.prompt_len, self.new_tokens, self.reps) < 1:
            raise ValueError("steps, prompts, prompt_len, new_tokens and reps must be >= 1")
        if 1 not in self.mem_futures or any(n < 1 for n in self.mem_futures):
            raise ValueError("mem_futures must contain 1 (the next-token reference), all >= 1")
        if 1 not in self.ind_futures or not any(n > 1 for n in self.ind_futures):
            raise ValueError("ind_futures must contain 1 and at least one n > 1")
        if any(n > self.ind_layers for n in self.ind_futures):
            raise ValueError(f"every ind_futures value must be <= ind_layers={self.ind_layers}")
        if not 1 <= self.ind_min_len <= self.ind_max_len <= self.ind_vocab:
            raise ValueError("need 1 <= ind_min_len <= ind_max_len <= ind_vocab (distinct tokens)")


PRESETS = {
    "tiny": dict(
        dim=32,
        n_layers=6,
        n_heads=1,
        seq_len=64,
        batch_size=8,
        steps=30,
        val_batches=2,
        prompts=2,
        prompt_len=16,
        new_tokens=48,
        reps=1,
        mem_layers=4,
        mem_futures=(1, 4),
        ind_seeds=1,
        ind_steps=40,
        ind_batch=16,
        ind_eval_every=20,
    ),
    "default": {},
    "full": dict(
        dim=256,
        n_layers=12,
        n_heads=8,
        seq_len=256,
        batch_size=16,
        steps=3000,
        lr=1e-3,
        val_batches=32,
        prompts=8,
        prompt_len=64,
        new_tokens=192,
        reps=5,
        mem_futures=(1, 2, 4, 8),
        ind_futures=(1, 2, 4),
        ind_layers=6,
        ind_seeds=5,
        ind_steps=1000,
    ),
}


def judge_induction(m) -> tuple[str, str]:
    """Holds when the best n > 1 reaches the copy threshold in fewer steps than n = 1."""
    ntp, mtp, cap = m["ntp_steps"], m["best_mtp_steps"], m["censored_at"]
    if ntp >= cap and mtp >= cap:
        return "inconclusive", "no model reached the threshold in the step budget"
    if mtp < ntp:
        return "holds", f"best MTP reached it at step {mtp:.0f} < NTP {ntp:.0f}"
    return "fails", f"best MTP step {mtp:.0f} >= NTP {ntp:.0f}"


# ---------------------------------------------------------------------------------------------

PAPER = PaperClaims(
    config=MTPClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="speedup",
            timed=True,
            statement="self-speculative decoding with heads 2..n is faster than head-1 greedy "
            "of the same model, with identical output (Sec. 3.2)",
            paper_figure="3.0x on code (n=4, 7B); 6.4x bytes (n=8); ~2.5 of 3 drafts accepted",
            criterion=quality_gated(
                all_of(at_least("speedup", 1.0, margin=0.05), at_least("identical_fraction", 1.0)),
                floor=QUALITY_FLOOR,
            ),
            run=experiments.run_speedup,
            ours="{speedup:.2f}x, {tokens_per_forward:.2f} tokens/forward (drafts accepted "
            "{acceptance_rate:.0%}; {val_draft_agreement:.0%} agree on real code), "
            "identical {identical_fraction:.0%}; text distinct-4 {distinct4:.2f}, longest "
            "repeat {longest_repeat:.0f} B",
        ),
        Claim(
            id="speedup_sampled",
            timed=True,
            statement="self-speculative sampling (heads 2..n draft, the speculative-sampling "
            "rule verifies: lossless) is faster than head-1 sampling of the same model "
            "(our extension of Sec. 3.2 to temperature > 0)",
            paper_figure="greedy only in the paper (3.0x on code)",
            criterion=quality_gated(at_least("speedup", 1.0, margin=0.05), floor=QUALITY_FLOOR),
            run=experiments.run_speedup_sampled,
            ours="T={temperature:g}: {speedup:.2f}x, {tokens_per_forward:.2f} tokens/forward "
            "(drafts accepted {acceptance_rate:.0%}); text distinct-4 {distinct4:.2f}, longest "
            "repeat {longest_repeat:.0f} B",
        ),
        Claim(
            id="memory",
            statement="the memory-efficient schedule keeps the peak of an n-head training step "
            "near next-token training instead of growing with n (Sec. 2, Fig. 2)",
            paper_figure="peak O(nV + d) -> O(V + d)",
            # PyTorch's cross-entropy keeps one logits-sized buffer per head for backward and
            # needs ~2 more while backpropagating one head: peak ~(n + 2) units naive vs ~3
            # efficient, i.e. 0.5 at n = 4 (1/n only as n grows); 0.75 leaves room for the
            # allocator and the rest of the step.
            criterion=all_of(
                at_most("efficient_over_naive", 0.75), at_most("efficient_over_ntp", 1.25)
            ),
            run=experiments.run_memory,
            ours="n={n:.0f}: efficient/naive peak {efficient_over_naive:.2f}, "
            "efficient/NTP {efficient_over_ntp:.2f}",
        ),
        Claim(
            id="induction",
            statement="multi-token training makes a small model learn induction (copying a "
            "random sequence) in fewer steps than next-token training (Sec. 4.1, Fig. 7)",
            paper_figure="n=2 clearly better induction below ~30M params",
            criterion=custom(
                "best n>1 reaches the copy-accuracy threshold in fewer steps "
                "than n=1 (neither reaching it: inconclusive)",
                judge_induction,
            ),
            run=partial(experiments.run_induction, threshold=INDUCTION_THRESHOLD),
            ours="steps to threshold: n=1 {ntp_steps:.0f}, best n>1 {best_mtp_steps:.0f}",
        ),
        Claim(
            id="val_loss",
            statement="at small scale, n-token training gives no next-token (head 1) loss gain "
            "over NTP at equal parameters and steps; holds if MTP head-1 val loss is not >1% "
            "below NTP's (Sec. 3.1, Fig. 3: benefits only appear with scale)",
            paper_figure="small models: MTP worse than NTP (0.3B-0.6B, Fig. 3)",
            criterion=at_least("head1_loss_ratio", 0.99, margin=0.01),
            run=experiments.run_val_loss,
            ours="head-1 val CE MTP {mtp_head1_val_loss:.3f} vs NTP {ntp_val_loss:.3f} "
            "(ratio {head1_loss_ratio:.3f})",
        ),
    ],
)
