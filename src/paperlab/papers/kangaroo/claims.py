"""Kangaroo's claims in miniature (Liu et al. 2024, arXiv 2404.18911, Sec. 4).

(1) speedup:   Kangaroo decoding is faster in wall time than plain KV-cached greedy decoding of
               the same target, with the identical output (Sec. 4.2: up to 1.68x, Vicuna-7B).
(2) acceptance: drafts from the shallow sub-network + adapter are accepted often enough to
               compress decoding: more than one token per target forward (Sec. 4.2, Fig. 5).
(3) eta_sweep: the second early exit matters: stopping drafting on low confidence (eta > 0)
               beats always drafting gamma tokens (eta = 0) (Sec. 4.3, Fig. 6).
(4) adapter:   the adapter matters: drafting from the exit layer straight into the LM head is
               slower and accepted less (Sec. 4.3, Table 3 "w/o adapter").
(1b) speedup_sampled: the same at temperature > 0 with the lossless speculative-sampling rule
               (our extension; claim 5 checks the rule keeps the distribution).
(5) lossless_sampling: with temperature > 0 the speculative acceptance rule keeps the target's
               output distribution (our extension: the official code is greedy only). A
               two-sample chi-square test of next-token frequencies on a small vocabulary, with
               a power check: the same test at the same sample size must detect sampling from
               the draft alone.

Claims 1-4 share one byte-level target trained on the stdlib corpus (`core.lm.DecodeTarget`, the
decoding target MTP and benchmarks/decode.py use too) and one adapter (through the run's
artifact cache, disk-cached). Claims 1-4 are judged only on text that passes the quality floor
(mean distinct-4 of the decoded continuations >= QUALITY_FLOOR): speculation on a loop accepts
every draft, and such a speed-up is not powered; claim 5 uses a small model over 8 character
classes of the same corpus. The runs are in ``experiments.py``, the figures in ``plots.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from paperlab.claims import Claim, PaperClaims, all_of, at_least, custom
from paperlab.core.lm import DecodeTarget
from paperlab.core.text_quality import quality_gated
from paperlab.papers.kangaroo import experiments, verdicts

ALPHA = 0.01  # claim 5: the significance level of the chi-square tests (fixed before the runs)
QUALITY_FLOOR = 0.5  # claims 1-4: mean distinct-4 of the decoded text must reach this
_TARGET = DecodeTarget()  # the shared decoding target's size and recipe (core.lm)


@dataclass
class KangarooClaimsConfig:
    # the byte-level target on the stdlib corpus (claims 1-4)
    dim: int = _TARGET.dim
    n_layers: int = _TARGET.n_layers
    n_heads: int = _TARGET.n_heads
    seq_len: int = _TARGET.seq_len
    batch_size: int = _TARGET.batch_size
    steps: int = _TARGET.steps
    lr: float = _TARGET.lr
    # the adapter (Sec. 3.1; official run settings for Vicuna-7B: exit layer 2, eta 0.6, 6 steps)
    exit_layer: int = 2
    adapter_layers: int = 1
    adapter_steps: int = 600
    adapter_lr: float = 1e-2
    eval_batches: int = 4
    eta: float = 0.6
    gamma: int = 6
    etas: tuple[float, ...] = (0.0, 0.4, 0.6, 0.8)
    sweep_temperature: float = 1.0  # the eta sweep is judged on sampled decoding
    sample_temperature: float = 0.9  # (1b) sampled decoding, in the 0.8-1.0 range
    # decoding runs: prompt + new tokens stay within the trained seq_len
    prompts: int = 4
    prompt_len: int = 32
    new_tokens: int = 96
    reps: int = 3
    decode_threads: int = 1  # torch threads while timing batch-1 decoding (0 = torch's default)
    # (5) lossless sampling on 8 character classes
    s_dim: int = 32
    s_layers: int = 4
    s_heads: int = 2
    s_exit_layer: int = 1
    s_steps: int = 150
    s_adapter_steps: int = 20  # a weak draft on purpose: more rejections exercise the rule
    s_prompt_len: int = 24
    s_new_tokens: int = 4
    s_gamma: int = 3
    s_eta: float = 0.0  # 0: always draft gamma tokens, the most draft-dependent case
    s_temperature: float = 1.0
    s_samples: int = 3000

    def __post_init__(self) -> None:
        if not 1 <= self.exit_layer < self.n_layers:
            raise ValueError(f"exit_layer={self.exit_layer} must be in 1..{self.n_layers - 1}")
        if not 1 <= self.s_exit_layer < self.s_layers:
            raise ValueError(f"s_exit_layer={self.s_exit_layer} must be in 1..{self.s_layers - 1}")
        if self.prompt_len + self.new_tokens > 1024:
            raise ValueError("prompt_len + new_tokens must be <= 1024 (the model's max_seq_len)")
        if any(not 0.0 <= e <= 1.0 for e in (self.eta, *self.etas)):
            raise ValueError("eta and every value of etas must be in [0, 1]")
        if 0.0 not in self.etas or not any(e > 0 for e in self.etas):
            raise ValueError("etas must contain 0 (no early stop) and at least one value > 0")
        if self.prompts < 1 or self.prompt_len < 1 or self.new_tokens < 1 or self.reps < 1:
            raise ValueError("prompts, prompt_len, new_tokens and reps must be >= 1")
        if self.s_samples < 10:
            raise ValueError("s_samples must be >= 10 for a chi-square test")
        if self.gamma < 1 or self.s_gamma < 1:
            raise ValueError("gamma and s_gamma must be >= 1")
        if self.s_new_tokens < 2:
            raise ValueError("s_new_tokens must be >= 2 (the first token never involves a draft)")
        if self.sweep_temperature <= 0:
            raise ValueError("sweep_temperature must be > 0 (claim 3 is judged on sampling)")
        if self.sample_temperature <= 0:
            raise ValueError("sample_temperature must be > 0 (claim 1b samples)")
        if self.s_temperature <= 0:
            raise ValueError("s_temperature must be > 0 (claim 5 samples)")


PRESETS = {
    "tiny": dict(
        dim=32,
        n_layers=4,
        n_heads=1,
        seq_len=64,
        batch_size=8,
        steps=30,
        exit_layer=1,
        adapter_steps=20,
        eval_batches=1,
        prompts=2,
        prompt_len=16,
        new_tokens=32,
        reps=1,
        etas=(0.0, 0.6),
        s_dim=16,
        s_layers=2,
        s_steps=30,
        s_adapter_steps=5,
        s_samples=400,
    ),
    "default": {},
    "full": dict(
        dim=256,
        n_layers=12,
        n_heads=8,
        seq_len=256,
        steps=3000,
        lr=1e-3,
        adapter_steps=1500,
        adapter_lr=1e-3,
        eval_batches=16,
        prompts=8,
        prompt_len=64,
        new_tokens=192,
        reps=5,
        s_samples=20000,
    ),
}


# ---------------------------------------------------------------------------------------------

PAPER = PaperClaims(
    config=KangarooClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="speedup",
            timed=True,
            statement="Kangaroo (shallow layers + adapter draft, double early exit) decodes "
            "faster than plain KV-cached greedy decoding of the same target, with identical "
            "output (Sec. 4.2)",
            paper_figure="up to 1.68x on Spec-Bench (Vicuna-7B); 67M extra params vs Medusa's 591M",
            criterion=quality_gated(
                all_of(at_least("speedup", 1.0, margin=0.05), at_least("identical_fraction", 1.0)),
                floor=QUALITY_FLOOR,
            ),
            run=experiments.run_speedup,
            ours="{speedup:.2f}x ({kangaroo_tokens_per_s:.0f} vs {plain_tokens_per_s:.0f} "
            "tokens/s), {compression_rate:.2f} tokens/target forward, identical "
            "{identical_fraction:.0%}; text distinct-4 {distinct4:.2f}, longest repeat "
            "{longest_repeat:.0f} B",
        ),
        Claim(
            id="speedup_sampled",
            timed=True,
            statement="Kangaroo sampling (the speculative-sampling rule, lossless: claim 5) is "
            "faster than plain sampling of the same target (our extension; the official code "
            "is greedy-only)",
            paper_figure="greedy only in the paper (up to 1.68x)",
            criterion=quality_gated(at_least("speedup", 1.0, margin=0.05), floor=QUALITY_FLOOR),
            run=experiments.run_speedup_sampled,
            ours="T={temperature:g}: {speedup:.2f}x, {compression_rate:.2f} tokens/target "
            "forward (drafts accepted {acceptance_rate:.0%}); text distinct-4 {distinct4:.2f}, "
            "longest repeat {longest_repeat:.0f} B",
        ),
        Claim(
            id="acceptance",
            statement="the self-draft is accepted often enough to compress decoding: more than "
            "one token per target forward at eta=0.6, gamma=6 (Sec. 4.2, compression rate)",
            paper_figure="compression rate > 1 on every Spec-Bench subtask (Vicuna-7B)",
            criterion=quality_gated(
                all_of(
                    at_least("compression_rate", 1.2, margin=0.1),
                    at_least("expected_accept_gain", 0.01),
                ),
                floor=QUALITY_FLOOR,
            ),
            run=experiments.run_acceptance,
            ours="{compression_rate:.2f} tokens/target forward, drafts accepted "
            "{acceptance_rate:.0%} (text distinct-4 {distinct4:.2f}); adapter training: "
            "soft-CE {soft_ce_before:.2f} -> "
            "{soft_ce_after:.2f}, E[accept] {expected_accept_before:.2f} -> "
            "{expected_accept_after:.2f}",
        ),
        Claim(
            id="eta_sweep",
            timed=True,  # compares wall times: a busy machine withholds it
            statement="the second early exit matters: stopping drafting when the draft's top-1 "
            "probability < eta beats always drafting gamma tokens (eta=0) (Sec. 4.3); judged "
            "on sampled decoding, where the draft is uncertain",
            paper_figure="eta=0.6 best; no early stop is slower (Vicuna-7B)",
            criterion=quality_gated(
                all_of(
                    at_least("gain_over_eta0", 1.0, margin=0.03),
                    at_least("identical_fraction", 1.0),
                ),
                floor=QUALITY_FLOOR,
            ),
            run=experiments.run_eta_sweep,
            ours="sampled (T={temperature:g}): best eta={best_eta:g} {best_speedup:.2f}x vs "
            "eta=0 {eta0_speedup:.2f}x (gain {gain_over_eta0:.2f}x, text distinct-4 "
            "{distinct4:.2f}); greedy: best/eta=0 {greedy_gain_over_eta0:.2f}x",
        ),
        Claim(
            id="adapter",
            timed=True,  # compares wall times: a busy machine withholds it
            statement="the adapter matters: drafting from the exit layer straight into the LM "
            "head is slower (Sec. 4.3, Table 3, 'w/o adapter')",
            paper_figure="speedup drops without the adapter (Table 3)",
            criterion=quality_gated(
                all_of(
                    at_least("speedup_ratio", 1.0, margin=0.03),
                    at_least("identical_fraction", 1.0),
                ),
                floor=QUALITY_FLOOR,
            ),
            run=experiments.run_adapter_ablation,
            ours="with adapter {adapter_speedup:.2f}x ({adapter_acceptance_rate:.0%} accepted) "
            "vs without {no_adapter_speedup:.2f}x ({no_adapter_acceptance_rate:.0%}); top-1 "
            "agreement {adapter_top1:.0%} vs {no_adapter_top1:.0%}; text distinct-4 "
            "{distinct4:.2f}",
        ),
        Claim(
            id="lossless_sampling",
            statement="with temperature > 0 the speculative acceptance rule keeps the target's "
            "distribution: Kangaroo sampling and plain sampling are indistinguishable "
            "(our extension; the official code is greedy-only)",
            paper_figure="lossless by construction (speculative sampling, Leviathan et al. 2023)",
            criterion=custom(
                f"chi-square homogeneity (Bonferroni over positions) p >= {ALPHA:g} for Kangaroo "
                "vs plain, while the same test rejects draft-only vs plain (else inconclusive)",
                partial(verdicts.judge_lossless, alpha=ALPHA),
            ),
            run=experiments.run_lossless_sampling,
            ours="p={p_kangaroo_vs_plain:.2f} (Kangaroo vs plain, n={samples:.0f}); the same "
            "test on draft-only sampling: p={p_draft_vs_plain:.1g}",
        ),
    ],
)
