"""Kangaroo's experiments (Liu et al. 2024, arXiv 2404.18911, Sec. 4). Claims 1-4: the
byte-level target and its adapter, shared by the claims through the run's artifact cache, and
the timed decoding runs (speedup, acceptance, the eta sweep, the adapter ablation). Claim 5:
a small target over 8 character classes, Kangaroo sampling against plain and draft-only
sampling, compared by chi-square homogeneity tests (`paperlab.core.stats`).

`train_byte_target` and `fit_adapter` are the recipes (also used by `benchmarks/decode.py`);
`shared_pair(ctx)` trains them once per paper run (or loads them from the disk cache). The
target is the shared decoding target of `paperlab.core.lm` (`DecodeTarget`: one disk-cache
entry with MTP's next-token baseline and the benchmark). Every timed run reports the quality of
the text it decoded (`core.text_quality`: distinct-4, longest repeated span).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from paperlab.claims import RunContext
from paperlab.core.artifacts import ModuleCodec
from paperlab.core.data.text import ByteTokenizer
from paperlab.core.device import torch_threads
from paperlab.core.generate import generate, logits_to_probs
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.lm import (
    DECODE_TARGET_NAME,
    VAL_SEED,
    ByteLM,
    DecodeTarget,
    corpus_batches,
    decode_prompts,
    next_token_loss,
    train_byte_lm,
    train_decode_target,
)
from paperlab.core.stats import chi_square_homogeneity
from paperlab.core.text_quality import text_quality
from paperlab.core.timing import Timings, time_interleaved
from paperlab.core.train import History, TrainConfig
from paperlab.papers.kangaroo import plots
from paperlab.papers.kangaroo.adapter import KangarooAdapter, evaluate_adapter, train_adapter
from paperlab.papers.kangaroo.decoding import KangarooDecoder

if TYPE_CHECKING:
    from paperlab.papers.kangaroo.claims import KangarooClaimsConfig

# the config fields the target's weights depend on, and those the adapter adds
TARGET_FIELDS = ("dim", "n_layers", "n_heads", "seq_len", "batch_size", "steps", "lr")
ADAPTER_FIELDS = ("exit_layer", "adapter_layers", "adapter_steps", "adapter_lr", "eval_batches")
AGREEMENT_SEED = 4321  # the validation batch of the teacher-forced top-1 agreement


# ---------------------------------------------------------------------------------------------
# The target and the adapter


def decode_target(cfg: KangarooClaimsConfig) -> DecodeTarget:
    """The shared decoding target's spec (`core.lm.DecodeTarget`) with this config's fields."""
    return DecodeTarget(**{f: getattr(cfg, f) for f in TARGET_FIELDS})


def byte_target_config(cfg: KangarooClaimsConfig, n_layers: int | None = None) -> LlamaConfig:
    """The byte-level target's architecture (cfg.n_layers deep unless `n_layers`)."""
    return decode_target(cfg).llama_config(n_layers)


def train_byte_target(
    cfg: KangarooClaimsConfig,
    seed: int,
    *,
    n_layers: int | None = None,
    progress: bool = False,
    device: str = "cpu",
) -> tuple[Llama, History]:
    """(model, training history): the shared decoding target (`core.lm.train_decode_target`,
    cfg.n_layers deep unless `n_layers`) trained with next-token cross-entropy on the stdlib
    corpus: the target here, and in benchmarks/decode.py also the separately trained small
    draft of assisted generation (same recipe, fewer layers). Returned in eval mode."""
    # DEVIATION: a ~0.6M-parameter byte model trained for a minute stands in for Vicuna-7B/13B
    model, history = train_decode_target(
        decode_target(cfg), seed=seed, n_layers=n_layers, device=device, progress=progress
    )
    return model.cpu(), history


def fit_adapter(
    model: Llama, cfg: KangarooClaimsConfig, seed: int, *, progress: bool = False
) -> tuple[KangarooAdapter, dict]:
    """The claims' adapter recipe on a frozen target: (adapter in eval mode, info with the
    training history and seconds, and validation soft-CE / expected acceptance before and
    after; JSON-able)."""
    # DEVIATION: soft labels from the frozen target on random corpus windows, computed on the
    # fly, instead of hidden states precomputed on ShareGPT conversations
    torch.manual_seed(seed)  # the adapter's initial weights depend on the seed only
    adapter = KangarooAdapter.for_model(
        model, exit_layer=cfg.exit_layer, n_layers=cfg.adapter_layers
    )

    def val():
        return corpus_batches("val", 8, cfg.seq_len, VAL_SEED)

    before = evaluate_adapter(model, adapter, val(), cfg.eval_batches)
    batches = corpus_batches("train", cfg.batch_size, cfg.seq_len, seed + 1)
    acfg = TrainConfig(
        steps=cfg.adapter_steps,
        lr=cfg.adapter_lr,
        warmup_steps=max(1, cfg.adapter_steps // 10),
        progress=progress,
        seed=seed,
        desc="kangaroo adapter",
    )
    history = train_adapter(model, adapter, batches, acfg)
    after = evaluate_adapter(model, adapter, val(), cfg.eval_batches)
    info = dict(adapter_seconds=history["seconds"][0], before=before, after=after, history=history)
    return adapter.eval(), info


def shared_pair(ctx: RunContext) -> tuple[Llama, KangarooAdapter, dict[str, Any]]:
    """(target, adapter, info) for claims 1-4: built once per paper run through the run's
    cache, and kept in its disk cache (a later run loads them). The target is keyed by the
    target fields only, so changing an adapter field retrains the adapter alone."""
    cfg: KangarooClaimsConfig = ctx.config
    target_spec = {f: getattr(cfg, f) for f in TARGET_FIELDS}

    def build_target() -> tuple[Llama, History]:
        return train_byte_target(cfg, ctx.seed, progress=ctx.progress, device=ctx.device)

    # the shared decoding target: the same artifact (name and spec) as MTP's NTP baseline
    model, target_history = ctx.shared(
        DECODE_TARGET_NAME,
        build_target,
        spec=target_spec,
        codec=ModuleCodec(build=lambda: Llama(byte_target_config(cfg)), kind="Llama"),
    )
    target_info = {"target_seconds": target_history["seconds"][0]}

    def build_adapter() -> tuple[KangarooAdapter, dict]:
        return fit_adapter(model, cfg, ctx.seed, progress=ctx.progress)

    def empty_adapter() -> KangarooAdapter:
        return KangarooAdapter(
            byte_target_config(cfg), exit_layer=cfg.exit_layer, n_layers=cfg.adapter_layers
        )

    adapter, info = ctx.shared(
        "kangaroo-adapter",
        build_adapter,
        spec=target_spec | {f: getattr(cfg, f) for f in ADAPTER_FIELDS},
        codec=ModuleCodec(build=empty_adapter, kind="KangarooAdapter"),
    )
    return model, adapter, info | target_info


def plain_greedy(model: Llama, prompt: list[int], new_tokens: int) -> list[int]:
    """The baseline: core KV-cached greedy decoding of the whole target."""
    return generate(model, [prompt], max_new_tokens=new_tokens)[0]


@torch.inference_mode()
def draft_agreement_by_depth(
    model: Llama, adapter: KangarooAdapter, cfg: KangarooClaimsConfig
) -> dict[str, float]:
    """Teacher-forced top-1 agreement with the target on validation code: the adapter's draft vs
    the exit layer read straight through the target's head (no adapter)."""
    x, _ = next(corpus_batches("val", 8, cfg.seq_len, AGREEMENT_SEED))
    h_exit = model.run_layers(model.embed(x), 0, adapter.exit_layer)
    target = model.head(model.run_layers(h_exit, adapter.exit_layer, None)).argmax(-1)
    return {
        "adapter_top1": float((adapter(model, h_exit).argmax(-1) == target).float().mean()),
        "no_adapter_top1": float((model.head(h_exit).argmax(-1) == target).float().mean()),
    }


# ---------------------------------------------------------------------------------------------
# Timed decoding


def _setup(ctx: RunContext):
    cfg: KangarooClaimsConfig = ctx.config
    model, adapter, info = shared_pair(ctx)
    ctx.notes["target_train_seconds"] = round(info["target_seconds"], 1)
    ctx.notes["adapter_train_seconds"] = round(info["adapter_seconds"], 1)
    return cfg, model, adapter, info, decode_prompts(cfg.prompts, cfg.prompt_len)


def time_decoders(
    ctx: RunContext, model: Llama, prompts, decoders: dict, temperature: float = 0.0
) -> Timings:
    """Interleaved timing of plain decoding and each named KangarooDecoder on every prompt:
    greedy (temperature 0) or sampling, every method drawing from one seeded generator."""
    cfg: KangarooClaimsConfig = ctx.config
    gen = torch.Generator().manual_seed(ctx.seed)
    sampling = dict(temperature=temperature, generator=gen)
    methods = {
        "plain": lambda p: generate(model, [p], max_new_tokens=cfg.new_tokens, **sampling)[0]
    }
    for name, dec in decoders.items():
        methods[name] = lambda p, dec=dec: dec.generate(
            p, max_new_tokens=cfg.new_tokens, **sampling
        )
    # batch-1 decoding of a small model is latency-bound: one thread avoids OpenMP stalls when
    # other processes share the cores (every method is timed the same way)
    with torch_threads(cfg.decode_threads or torch.get_num_threads()):
        return time_interleaved(
            methods, prompts, cfg.reps, progress=ctx.progress, desc="kangaroo decode"
        )


def summarize(timings: Timings, name: str, plain_out) -> dict[str, float]:
    """Speedup over plain decoding, compression, acceptance and exactness of method `name`."""
    results = timings.outputs[name]
    tokens = sum(len(r.tokens) for r in results)
    plain_tokens = sum(len(o) for o in plain_out)
    drafted = sum(r.drafted for r in results)
    quality = text_quality([r.tokens for r in results])  # the text this method decoded
    return {f"text_{k}": v for k, v in quality.items()} | {
        # tokens/s ratio (equal to the time ratio when both produce every requested token)
        "speedup": (tokens / timings.median(name)) / (plain_tokens / timings.median("plain")),
        "compression_rate": tokens / sum(r.target_forwards for r in results),
        "acceptance_rate": sum(r.accepted for r in results) / max(1, drafted),
        "drafts_per_round": drafted / max(1, sum(len(r.accept_lengths) for r in results)),
        "identical_fraction": statistics.fmean(
            float(r.tokens == p) for r, p in zip(results, plain_out, strict=True)
        ),
    }


# ---------------------------------------------------------------------------------------------
# (1) speedup with the exact-output check, (2) acceptance and compression


def run_speedup(ctx: RunContext) -> dict[str, float]:
    cfg, model, adapter, info, prompts = _setup(ctx)
    dec = KangarooDecoder(model, adapter, eta=cfg.eta, gamma=cfg.gamma)
    timings = time_decoders(ctx, model, prompts, {"kangaroo": dec})
    plain_out = timings.outputs["plain"]
    tokens = sum(len(o) for o in plain_out)
    out = summarize(timings, "kangaroo", plain_out)
    ctx.notes["sample_prompt"] = ByteTokenizer().decode(prompts[0])
    ctx.notes["sample_output"] = ByteTokenizer().decode(plain_out[0])
    plots.plot_speedup(ctx, timings, tokens)
    return (
        out
        | text_quality(plain_out)
        | {
            "plain_tokens_per_s": tokens / timings.median("plain"),
            "kangaroo_tokens_per_s": tokens / timings.median("kangaroo"),
            "adapter_params": adapter.num_params(),
            "target_params": model.num_params(),
            "extra_param_fraction": adapter.num_params() / model.num_params(),
        }
    )


def run_speedup_sampled(ctx: RunContext) -> dict[str, float]:
    """Kangaroo sampling (the speculative-sampling rule: lossless, claim 5) against plain
    sampling at `sample_temperature`: sampled text does not loop."""
    # DEVIATION: a sampled speed claim (the paper and the official code time greedy only)
    cfg, model, adapter, info, prompts = _setup(ctx)
    dec = KangarooDecoder(model, adapter, eta=cfg.eta, gamma=cfg.gamma)
    timings = time_decoders(ctx, model, prompts, {"kangaroo": dec}, cfg.sample_temperature)
    out = summarize(timings, "kangaroo", timings.outputs["plain"])
    ctx.notes["sample_output"] = ByteTokenizer().decode(timings.outputs["kangaroo"][0].tokens)
    quality = text_quality([r.tokens for r in timings.outputs["kangaroo"]])
    plain = text_quality(timings.outputs["plain"])
    return (
        {k: v for k, v in out.items() if k != "identical_fraction" and not k.startswith("text_")}
        | quality
        | {"plain_distinct4": plain["distinct4"], "temperature": cfg.sample_temperature}
    )


def run_acceptance(ctx: RunContext) -> dict[str, float]:
    cfg, model, adapter, info, prompts = _setup(ctx)
    dec = KangarooDecoder(model, adapter, eta=cfg.eta, gamma=cfg.gamma)
    with torch_threads(cfg.decode_threads or torch.get_num_threads()):
        results = [dec.generate(p, max_new_tokens=cfg.new_tokens) for p in prompts]
    tokens = sum(len(r.tokens) for r in results)
    drafted, accepted = sum(r.drafted for r in results), sum(r.accepted for r in results)
    rounds = [n for r in results for n in r.accept_lengths]
    plots.plot_adapter_training(ctx, info["history"], info)
    return (
        text_quality([r.tokens for r in results])
        | {
            "compression_rate": tokens / sum(r.target_forwards for r in results),
            "acceptance_rate": accepted / max(1, drafted),
            "drafts_per_round": drafted / max(1, len(rounds)),
            "mean_accept_length": statistics.fmean(rounds) if rounds else 0.0,
            "soft_ce_before": info["before"]["soft_ce"],
            "soft_ce_after": info["after"]["soft_ce"],
            "expected_accept_before": info["before"]["accept"],
            "expected_accept_after": info["after"]["accept"],
            "expected_accept_gain": info["after"]["accept"] - info["before"]["accept"],
        }
        | draft_agreement_by_depth(model, adapter, cfg)
    )


# ---------------------------------------------------------------------------------------------
# (3) the eta sweep, (4) the adapter ablation


def eta_sweep(ctx: RunContext, model, adapter, prompts, temperature: float) -> dict:
    """{eta: summary} for every eta of the config, timed against plain decoding."""
    cfg: KangarooClaimsConfig = ctx.config
    decoders = {
        f"eta={e:g}": KangarooDecoder(model, adapter, eta=e, gamma=cfg.gamma) for e in cfg.etas
    }
    timings = time_decoders(ctx, model, prompts, decoders, temperature)
    return {e: summarize(timings, f"eta={e:g}", timings.outputs["plain"]) for e in cfg.etas}


def run_eta_sweep(ctx: RunContext) -> dict[str, float]:
    cfg, model, adapter, info, prompts = _setup(ctx)
    # DEVIATION: the paper sweeps eta on greedy decoding; here the claim is
    # judged where the draft is uncertain: sampling at sweep_temperature (see README: the
    # miniature's greedy continuations are repetitive, drafts are ~always right there, and
    # an early stop can only cost); the greedy sweep is measured and reported alongside
    sweeps = {
        "greedy": eta_sweep(ctx, model, adapter, prompts, 0.0),
        "sampled": eta_sweep(ctx, model, adapter, prompts, cfg.sweep_temperature),
    }
    judged = sweeps["sampled"]
    out = {}
    for mode, rows in sweeps.items():
        for e, row in rows.items():
            out |= {f"{mode}_eta{e:g}_{k}": v for k, v in row.items() if k != "identical_fraction"}
    best_eta = max((e for e in cfg.etas if e > 0), key=lambda e: judged[e]["speedup"])
    plots.plot_eta(ctx, sweeps)
    quality = {k[len("text_") :]: v for k, v in judged[best_eta].items() if k.startswith("text_")}
    return (
        out
        | quality
        | {
            "best_eta": best_eta,
            "best_speedup": judged[best_eta]["speedup"],
            "eta0_speedup": judged[0.0]["speedup"],
            "gain_over_eta0": judged[best_eta]["speedup"] / judged[0.0]["speedup"],
            "greedy_gain_over_eta0": max(r["speedup"] for e, r in sweeps["greedy"].items() if e > 0)
            / sweeps["greedy"][0.0]["speedup"],
            "temperature": cfg.sweep_temperature,
            "identical_fraction": min(r["identical_fraction"] for r in sweeps["greedy"].values()),
        }
    )


def run_adapter_ablation(ctx: RunContext) -> dict[str, float]:
    cfg, model, adapter, info, prompts = _setup(ctx)
    decoders = {
        "adapter": KangarooDecoder(model, adapter, eta=cfg.eta, gamma=cfg.gamma),
        "no_adapter": KangarooDecoder(
            model, None, exit_layer=cfg.exit_layer, eta=cfg.eta, gamma=cfg.gamma
        ),
    }
    timings = time_decoders(ctx, model, prompts, decoders)
    plain_out = timings.outputs["plain"]
    out = {}
    for name in decoders:
        out |= {f"{name}_{k}": v for k, v in summarize(timings, name, plain_out).items()}
    return (
        out
        | {
            "speedup_ratio": out["adapter_speedup"] / out["no_adapter_speedup"],
            "identical_fraction": min(
                out["adapter_identical_fraction"], out["no_adapter_identical_fraction"]
            ),
        }
        | text_quality(plain_out)
        | draft_agreement_by_depth(model, adapter, cfg)
    )


# ---------------------------------------------------------------------------------------------
# (5) lossless sampling: chi-square on 8 character classes

CLASS_NAMES = ("space", "newline", "lower", "upper", "digit", "underscore", "bracket", "other")
# the config fields the class target and its adapter depend on
CLASS_FIELDS = ("s_dim", "s_layers", "s_heads", "s_steps", "s_exit_layer", "s_adapter_steps")
CLASS_LR, CLASS_ADAPTER_LR, CLASS_BATCH, CLASS_SEQ = 5e-3, 3e-3, 16, 64


def char_classes(data: torch.Tensor) -> torch.Tensor:
    """Bytes -> 8 classes (CLASS_NAMES): a small-vocabulary sequence with real structure."""
    table = torch.full((256,), 7, dtype=torch.long)
    table[ord(" ")], table[ord("\n")], table[ord("_")] = 0, 1, 5
    for lo, hi, c in (("a", "z", 2), ("A", "Z", 3), ("0", "9", 4)):
        table[ord(lo) : ord(hi) + 1] = c
    for ch in "()[]{}":
        table[ord(ch)] = 6
    return table[data.long()]


def class_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy on byte windows mapped to their character classes."""
    x, y = batch
    return next_token_loss(model, (char_classes(x), char_classes(y)))


def class_target_config(cfg: KangarooClaimsConfig) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(CLASS_NAMES),
        dim=cfg.s_dim,
        n_layers=cfg.s_layers,
        n_heads=cfg.s_heads,
        max_seq_len=256,
    )


def train_class_pair(
    cfg: KangarooClaimsConfig, seed: int, *, progress: bool = False
) -> tuple[Llama, KangarooAdapter, dict]:
    """(target, adapter, info): the small target over character classes (the byte LM recipe
    of `paperlab.core.lm` with the class loss) and a deliberately weak adapter (few steps)."""
    torch.manual_seed(seed)
    model = Llama(class_target_config(cfg))
    recipe = ByteLM(steps=cfg.s_steps, lr=CLASS_LR, batch_size=CLASS_BATCH, seq_len=CLASS_SEQ)
    history = train_byte_lm(
        model, recipe, seed=seed, loss_fn=class_loss, progress=progress, desc="8-class target"
    )
    adapter = KangarooAdapter.for_model(model, exit_layer=cfg.s_exit_layer)
    acfg = TrainConfig(steps=cfg.s_adapter_steps, lr=CLASS_ADAPTER_LR, progress=False, seed=seed)
    classes = (
        (char_classes(x), char_classes(y))
        for x, y in corpus_batches("train", CLASS_BATCH, CLASS_SEQ, seed + 1)
    )
    adapter_history = train_adapter(model, adapter, classes, acfg)
    info = {
        "target_seconds": history["seconds"][0],
        "adapter_seconds": adapter_history["seconds"][0],
    }
    return model, adapter.eval(), info


def shared_class_pair(ctx: RunContext) -> tuple[Llama, KangarooAdapter, dict]:
    """The class target and adapter of claim 5, trained once per spec through the run's cache
    (disk-cached, the two modules in one file)."""
    cfg: KangarooClaimsConfig = ctx.config

    def pair(model: Llama, adapter: KangarooAdapter) -> torch.nn.ModuleDict:
        return torch.nn.ModuleDict({"target": model, "adapter": adapter})

    def build() -> tuple[torch.nn.ModuleDict, dict]:
        model, adapter, info = train_class_pair(cfg, ctx.seed, progress=ctx.progress)
        return pair(model, adapter), info

    def empty() -> torch.nn.ModuleDict:
        llama = class_target_config(cfg)
        return pair(Llama(llama), KangarooAdapter(llama, exit_layer=cfg.s_exit_layer))

    modules, info = ctx.shared(
        "kangaroo-class-pair",
        build,
        spec={f: getattr(cfg, f) for f in CLASS_FIELDS},
        codec=ModuleCodec(build=empty, kind="KangarooClassPair"),
    )
    return modules["target"], modules["adapter"], info


def positions_test(x: torch.Tensor, y: torch.Tensor, vocab: int) -> tuple[float, list[float]]:
    """Per generated position (columns of x, y: (N, T)) a chi-square homogeneity test; returns
    the Bonferroni-combined p-value min(1, T * min p) and the per-position p-values."""
    ps = [chi_square_homogeneity(x[:, t], y[:, t], vocab)[2] for t in range(x.shape[1])]
    return min(1.0, len(ps) * min(ps)), ps


@torch.inference_mode()
def sample_from_draft(
    model: Llama,
    adapter: KangarooAdapter,
    prompt: list[int],
    n: int,
    new_tokens: int,
    temperature: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(n, new_tokens) independent samples from the draft model alone (shallow layers +
    adapter + head), without a cache: the power check of the lossless test."""
    seqs = torch.tensor([prompt] * n)
    for _ in range(new_tokens):
        h_exit = model.run_layers(model.embed(seqs), 0, adapter.exit_layer)
        q = logits_to_probs(adapter(model, h_exit)[:, -1], temperature=temperature)
        seqs = torch.cat([seqs, torch.multinomial(q, 1, generator=generator)], dim=1)
    return seqs[:, len(prompt) :]


def total_variation(x: torch.Tensor, y: torch.Tensor, vocab: int) -> float:
    """Mean over positions of the total-variation distance between empirical marginals."""
    tvs = []
    for t in range(x.shape[1]):
        px = torch.bincount(x[:, t], minlength=vocab).double() / len(x)
        py = torch.bincount(y[:, t], minlength=vocab).double() / len(y)
        tvs.append(0.5 * float((px - py).abs().sum()))
    return statistics.fmean(tvs)


def run_lossless_sampling(ctx: RunContext) -> dict[str, float]:
    cfg: KangarooClaimsConfig = ctx.config
    V, T, n = len(CLASS_NAMES), cfg.s_new_tokens, cfg.s_samples
    model, adapter, info = shared_class_pair(ctx)
    ctx.notes["class_target_train_seconds"] = round(info["target_seconds"], 1)
    prompt = char_classes(torch.tensor(decode_prompts(1, cfg.s_prompt_len)[0])).tolist()
    gen = torch.Generator().manual_seed(ctx.seed)
    sampling = dict(temperature=cfg.s_temperature, generator=gen)
    plain = torch.tensor(generate(model, [prompt] * n, max_new_tokens=T, **sampling))
    dec = KangarooDecoder(model, adapter, eta=cfg.s_eta, gamma=cfg.s_gamma)
    results = [
        dec.generate(prompt, max_new_tokens=T, **sampling)
        for _ in tqdm(range(n), desc="kangaroo sampling", disable=not ctx.progress)
    ]
    kangaroo = torch.tensor([r.tokens for r in results])
    draft = sample_from_draft(model, adapter, prompt, n, T, cfg.s_temperature, gen)
    # the first token comes from the target's prefill in every method: test positions 2..T
    p_same, ps_same = positions_test(kangaroo[:, 1:], plain[:, 1:], V)
    p_power, _ = positions_test(draft[:, 1:], plain[:, 1:], V)
    drafted, accepted = sum(r.drafted for r in results), sum(r.accepted for r in results)
    plots.plot_sampling(ctx, plain, kangaroo, draft, V)
    out = {
        "p_kangaroo_vs_plain": p_same,
        "p_draft_vs_plain": p_power,
        "samples": n,
        "acceptance_rate": accepted / max(1, drafted),
        "tv_draft_vs_plain": total_variation(draft[:, 1:], plain[:, 1:], V),
        "tv_kangaroo_vs_plain": total_variation(kangaroo[:, 1:], plain[:, 1:], V),
    }
    return out | {f"p_pos{t + 2}": p for t, p in enumerate(ps_same)}
