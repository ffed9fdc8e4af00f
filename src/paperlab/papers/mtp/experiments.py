"""MTP's experiments (Gloeckle et al. 2024, arXiv 2404.19737): byte-level n-head models on the
stdlib corpus (claims 1 and 4), trained once per spec through the run's artifact cache (and its
disk cache); peak memory of one training step in fresh processes (claim 2); the copy task's
learning curves (claim 3, cached as JSON per run).

`train_byte_model` is the byte-model recipe (also used by `benchmarks/decode.py`): the fields
of `paperlab.core.lm.DecodeTarget` (corpus, recipe, size) with n heads. The next-token (n = 1)
baseline of claim 4 *is* that shared decoding target (`shared_ntp_model`: the same disk-cache
entry as Kangaroo's target and the benchmark's), loaded into an n = 1 `MultiTokenLlama`.
Every decoding speed-up reports the quality of the text it decoded (`core.text_quality`).
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import TYPE_CHECKING

import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import JSONCodec, ModuleCodec
from paperlab.core.data.text import ByteTokenizer
from paperlab.core.device import torch_threads
from paperlab.core.llama import Llama
from paperlab.core.lm import (
    DECODE_TARGET_NAME,
    VAL_SEED,
    DecodeTarget,
    corpus_batches,
    decode_prompts,
    train_byte_lm,
    train_decode_target,
)
from paperlab.core.text_quality import text_quality
from paperlab.core.timing import time_interleaved
from paperlab.core.train import History
from paperlab.papers.mtp import plots
from paperlab.papers.mtp.induction import CopyTask, steps_to_threshold, train_copy_task
from paperlab.papers.mtp.memory import measure_in_subprocess
from paperlab.papers.mtp.model import MTPConfig, MultiTokenLlama, head_losses, make_loss_fn
from paperlab.papers.mtp.speculative import greedy_generate, self_speculative_generate

if TYPE_CHECKING:
    from paperlab.papers.mtp.claims import MTPClaimsConfig

# the config fields a byte model's weights depend on (with its n_future), and the copy task's
MODEL_FIELDS = ("dim", "n_layers", "n_heads", "seq_len", "batch_size", "steps", "lr")
INDUCTION_FIELDS = (
    "ind_layers",
    "ind_dim",
    "ind_vocab",
    "ind_min_len",
    "ind_max_len",
    "ind_steps",
    "ind_batch",
    "ind_lr",
    "ind_eval_every",
    "ind_loss_on_prefix",
)


# ---------------------------------------------------------------------------------------------
# Byte-level models on the stdlib corpus, shared by claims 1 and 4


def byte_model_config(cfg: MTPClaimsConfig, n_future: int) -> MTPConfig:
    """The architecture of an n-head byte-level model of the claims."""
    return MTPConfig(
        vocab_size=256,
        dim=cfg.dim,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        max_seq_len=1024,
        n_future=n_future,
    )


def decode_target(cfg: MTPClaimsConfig) -> DecodeTarget:
    """The shared decoding target's spec with this config's size and recipe."""
    return DecodeTarget(**{f: getattr(cfg, f) for f in MODEL_FIELDS})


def train_byte_model(
    cfg: MTPClaimsConfig, n_future: int, seed: int, *, progress: bool = False, device: str = "cpu"
) -> tuple[MultiTokenLlama, History]:
    """(model in eval mode, training history with "seconds"): an n-head byte model trained
    with the memory-efficient schedule by the shared target's recipe (`core.lm.DecodeTarget`:
    same corpus windows, steps, lr schedule and seed)."""
    # DEVIATION: ~0.6M-parameter byte models and ~1M training bytes instead of 0.3B-13B models
    # on 200B+ tokens (and 7B on 314B bytes for the byte-level runs, Sec. 3.3)
    torch.manual_seed(seed)
    model = MultiTokenLlama(config=byte_model_config(cfg, n_future))
    history = train_byte_lm(
        model,
        decode_target(cfg).recipe(),
        seed=seed,
        loss_fn=make_loss_fn(efficient=True),
        manual_backward=True,
        device=device,
        progress=progress,
        desc=f"mtp n={n_future}",
    )
    return model.cpu() if device != "cpu" else model, history


def shared_ntp_model(ctx: RunContext) -> tuple[MultiTokenLlama, History]:
    """The next-token (n = 1) model: the shared decoding target (`core.lm.DecodeTarget`, one
    disk-cache entry with Kangaroo and the benchmark) as an n = 1 `MultiTokenLlama`."""
    cfg: MTPClaimsConfig = ctx.config
    target = decode_target(cfg)

    def build() -> tuple[Llama, History]:
        model, history = train_decode_target(
            target, seed=ctx.seed, device=ctx.device, progress=ctx.progress
        )
        return model.cpu(), history

    llama, history = ctx.shared(
        DECODE_TARGET_NAME,
        build,
        spec=dataclasses.asdict(target),
        codec=ModuleCodec(build=lambda: Llama(target.llama_config()), kind="Llama"),
    )
    # DEVIATION: the NTP baseline is trained by next_token_loss (the shared target), not by the
    # n = 1 memory-efficient schedule: the same objective, data order, steps and parameters
    model = MultiTokenLlama(config=byte_model_config(cfg, 1))
    model.llama.load_state_dict(llama.state_dict())
    return model.eval(), history


def shared_byte_model(ctx: RunContext, n_future: int) -> tuple[MultiTokenLlama, History]:
    """The n-head byte model, trained once per spec in this paper's run (disk-cached)."""
    cfg: MTPClaimsConfig = ctx.config

    def build() -> tuple[MultiTokenLlama, History]:
        return train_byte_model(cfg, n_future, ctx.seed, progress=ctx.progress, device=ctx.device)

    return ctx.shared(
        "mtp-byte-model",
        build,
        spec={f: getattr(cfg, f) for f in MODEL_FIELDS} | {"n_future": n_future},
        codec=ModuleCodec(
            build=lambda: MultiTokenLlama(config=byte_model_config(cfg, n_future)),
            kind="MultiTokenLlama",
        ),
    )


def val_losses(model: MultiTokenLlama, cfg: MTPClaimsConfig) -> list[float]:
    """Per-head cross-entropy (nats/byte) on fixed windows of the validation files."""
    batches = corpus_batches("val", cfg.batch_size, cfg.seq_len, VAL_SEED)
    per_batch = [head_losses(model, *next(batches)) for _ in range(cfg.val_batches)]
    return [statistics.fmean(col) for col in zip(*per_batch, strict=True)]


@torch.no_grad()
def draft_agreement(model: MultiTokenLlama, cfg: MTPClaimsConfig) -> list[float]:
    """On real validation code (teacher forcing): how often head i's argmax at position t equals
    head 1's argmax at t + i - 1, i = 2..n; what drafts need on text that is not the model's own
    (often repetitive) greedy output."""
    x, _ = next(corpus_batches("val", cfg.batch_size, cfg.seq_len, VAL_SEED))
    pred = model(x).argmax(-1)  # (B, T, n)
    T = pred.shape[1]
    return [
        float((pred[:, : T - i, i] == pred[:, i:, 0]).float().mean())
        for i in range(1, model.n_future)
    ]


# ---------------------------------------------------------------------------------------------
# (1) self-speculative decoding speed, with the exact-output check


def time_decoding(ctx: RunContext, model: MultiTokenLlama, temperature: float):
    """Interleaved timing of head-1 decoding and self-speculative decoding on the held-out
    prompts, greedy (temperature 0) or sampled (each method with its own generator, seeded
    alike)."""
    cfg: MTPClaimsConfig = ctx.config
    prompts = decode_prompts(cfg.prompts, cfg.prompt_len)
    gens = {name: torch.Generator().manual_seed(ctx.seed) for name in ("plain", "spec")}
    n = cfg.new_tokens
    methods = {
        "plain": lambda p: greedy_generate(
            model, p, max_new_tokens=n, temperature=temperature, generator=gens["plain"]
        ),
        "spec": lambda p: self_speculative_generate(
            model, p, max_new_tokens=n, temperature=temperature, generator=gens["spec"]
        ),
    }
    # batch-1 decoding of a small model is latency-bound; one thread keeps OpenMP barriers from
    # stalling when other processes share the cores (both methods are timed the same way)
    with torch_threads(cfg.decode_threads or torch.get_num_threads()):
        timings = time_interleaved(methods, prompts, cfg.reps)
    return prompts, timings


def speed_figures(timings) -> dict[str, float]:
    plain_out, spec_out = timings.outputs["plain"], timings.outputs["spec"]
    plain_s, spec_s = timings.median("plain"), timings.median("spec")
    tokens = sum(len(o) for o in plain_out)
    spec_tokens = sum(len(r.tokens) for r in spec_out)
    drafted, accepted = sum(r.drafted for r in spec_out), sum(r.accepted for r in spec_out)
    return {
        "speedup": (spec_tokens / spec_s) / (tokens / plain_s),
        "plain_tokens_per_s": tokens / plain_s,
        "spec_tokens_per_s": spec_tokens / spec_s,
        "tokens_per_forward": spec_tokens / sum(r.forwards for r in spec_out),
        "acceptance_rate": accepted / max(1, drafted),
    }


def run_speedup(ctx: RunContext) -> dict[str, float]:
    cfg: MTPClaimsConfig = ctx.config
    model, history = shared_byte_model(ctx, cfg.n_future)
    ctx.notes["train_seconds"] = round(history["seconds"][0], 1)
    prompts, timings = time_decoding(ctx, model, 0.0)
    plain_out, spec_out = timings.outputs["plain"], timings.outputs["spec"]
    identical = [p == r.tokens for p, r in zip(plain_out, spec_out, strict=True)]
    counts = [c for r in spec_out for c in r.per_forward]
    ctx.notes["sample_prompt"] = ByteTokenizer().decode(prompts[0])
    ctx.notes["sample_output"] = ByteTokenizer().decode(plain_out[0])
    agreement = draft_agreement(model, cfg)
    figures = speed_figures(timings)
    plots.plot_speedup(
        ctx, counts, model.n_future, figures["plain_tokens_per_s"], figures["spec_tokens_per_s"]
    )
    return (
        figures
        | text_quality(plain_out)  # the powering figure: greedy text of a tiny model may loop
        | {
            "identical_fraction": sum(identical) / len(identical),
            "val_draft_agreement": statistics.fmean(agreement),
            "n_future": model.n_future,
            "prompts": len(prompts),
        }
    )


def run_speedup_sampled(ctx: RunContext) -> dict[str, float]:
    """Self-speculative *sampling* (the speculative-sampling rule; lossless, tested) against
    head-1 sampling at `sample_temperature`: sampled text does not loop."""
    # DEVIATION: a sampled speed claim (the paper times greedy self-speculation only)
    cfg: MTPClaimsConfig = ctx.config
    model, _ = shared_byte_model(ctx, cfg.n_future)
    prompts, timings = time_decoding(ctx, model, cfg.sample_temperature)
    spec_tokens = [r.tokens for r in timings.outputs["spec"]]
    ctx.notes["sample_output"] = ByteTokenizer().decode(spec_tokens[0])
    plain_quality = text_quality(timings.outputs["plain"])
    return (
        speed_figures(timings)
        | text_quality(spec_tokens)  # the text the speed-up was measured on
        | {"plain_distinct4": plain_quality["distinct4"], "temperature": cfg.sample_temperature}
    )


# ---------------------------------------------------------------------------------------------
# (2) peak memory: naive all-heads backward vs the memory-efficient schedule


def run_memory(ctx: RunContext) -> dict[str, float]:
    cfg: MTPClaimsConfig = ctx.config
    shape = dict(
        vocab_size=cfg.mem_vocab,
        dim=cfg.mem_dim,
        n_layers=cfg.mem_layers,
        batch_size=cfg.mem_batch,
        seq_len=cfg.mem_seq_len,
        seed=ctx.seed,
    )
    unit = cfg.mem_batch * cfg.mem_seq_len * cfg.mem_vocab * 4  # one float32 logits tensor
    rows = {}
    for n in cfg.mem_futures:
        schedules = ("naive",) if n == 1 else ("naive", "efficient")  # identical for n = 1
        for schedule in schedules:
            r = measure_in_subprocess(schedule=schedule, n_future=n, **shape)
            rows[(schedule, n)] = r["excess_bytes"] / unit
    rows.update({("efficient", 1): rows[("naive", 1)]})
    n_max = max(cfg.mem_futures)
    plots.plot_memory(ctx, cfg.mem_futures, rows, unit)
    out = {f"{s}_n{n}_logit_units": v for (s, n), v in sorted(rows.items())}
    return out | {
        "n": n_max,
        "efficient_over_naive": rows[("efficient", n_max)] / rows[("naive", n_max)],
        "efficient_over_ntp": rows[("efficient", n_max)] / rows[("naive", 1)],
        "logits_mb": unit / 2**20,
    }


# ---------------------------------------------------------------------------------------------
# (3) induction: steps until head 1 copies well


def copy_task(cfg: MTPClaimsConfig) -> CopyTask:
    return CopyTask(
        vocab=cfg.ind_vocab,
        min_len=cfg.ind_min_len,
        max_len=cfg.ind_max_len,
        loss_on_prefix=cfg.ind_loss_on_prefix,
    )


def copy_curve(ctx: RunContext, n_future: int, seed: int) -> tuple[list[int], list[float]]:
    """(eval steps, head-1 copy accuracies) of one copy-task training, through the run's cache
    (the curve as JSON on disk: a later run does not train again)."""
    cfg: MTPClaimsConfig = ctx.config

    def build() -> list[list]:
        steps, acc = train_copy_task(
            copy_task(cfg),
            n_future=n_future,
            n_layers=cfg.ind_layers,
            dim=cfg.ind_dim,
            steps=cfg.ind_steps,
            batch_size=cfg.ind_batch,
            lr=cfg.ind_lr,
            eval_every=cfg.ind_eval_every,
            seed=seed,
            progress=ctx.progress,
        )
        return [steps, acc]

    spec = {f: getattr(cfg, f) for f in INDUCTION_FIELDS} | {"n_future": n_future, "seed": seed}
    steps, acc = ctx.shared("mtp-copy-curve", build, spec=spec, codec=JSONCodec())
    return list(steps), list(acc)


def run_induction(ctx: RunContext, *, threshold: float) -> dict[str, float]:
    """Mean steps until head-1 copy accuracy reaches `threshold` (a criterion constant), per n."""
    cfg: MTPClaimsConfig = ctx.config
    censored = float(cfg.ind_steps + cfg.ind_eval_every)  # "never reached"
    curves, out = {}, {}
    for n in cfg.ind_futures:
        reached = []
        for s in range(cfg.ind_seeds):
            steps, acc = copy_curve(ctx, n, ctx.seed + s)
            curves[(n, s)] = (steps, acc)
            reached.append(steps_to_threshold(steps, acc, threshold, censored=censored))
        out[f"n{n}_steps_to_threshold"] = statistics.fmean(reached)
        out[f"n{n}_final_accuracy"] = statistics.fmean(
            curves[(n, s)][1][-1] for s in range(cfg.ind_seeds)
        )
    ntp = out["n1_steps_to_threshold"]
    best = min(out[f"n{n}_steps_to_threshold"] for n in cfg.ind_futures if n > 1)
    plots.plot_induction(ctx, curves, threshold)
    return out | {
        "ntp_steps": ntp,
        "best_mtp_steps": best,
        "censored_at": censored,
        "mtp_over_ntp_steps": best / ntp,
        "threshold": threshold,
    }


# ---------------------------------------------------------------------------------------------
# (4) head-1 validation loss at small scale, equal parameters and steps


def run_val_loss(ctx: RunContext) -> dict[str, float]:
    # DEVIATION: the paper shows small models losing on code benchmarks (MBPP / HumanEval
    # pass@k, Fig. 3); a miniature byte model solves none, so head-1 validation loss stands in.
    cfg: MTPClaimsConfig = ctx.config
    ntp, ntp_hist = shared_ntp_model(ctx)  # the shared decoding target, trained by NTP
    mtp, mtp_hist = shared_byte_model(ctx, cfg.n_future)
    if ntp.num_params() != mtp.num_params():
        raise AssertionError("parameter parity broken: NTP and MTP differ in size")
    ntp_val, mtp_val = val_losses(ntp, cfg), val_losses(mtp, cfg)
    plots.plot_val(ctx, ntp_hist, mtp_hist, ntp_val, mtp_val)
    out = {
        "ntp_val_loss": ntp_val[0],
        "mtp_head1_val_loss": mtp_val[0],
        "head1_loss_ratio": mtp_val[0] / ntp_val[0],
        "params": ntp.num_params(),
        "n_future": cfg.n_future,
    }
    return out | {f"mtp_head{i + 1}_val_loss": v for i, v in enumerate(mtp_val[1:], start=1)}
