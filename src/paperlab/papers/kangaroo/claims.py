"""Kangaroo's claims in miniature (card `kangaroo` in PAPERS.md; Liu et al. 2024, 2404.18911).

(1) speedup:   Kangaroo decoding is faster in wall time than plain KV-cached greedy decoding of
               the same target, with the identical output (Sec. 4.2: up to 1.68x, Vicuna-7B).
(2) acceptance: drafts from the shallow sub-network + adapter are accepted often enough to
               compress decoding: more than one token per target forward (Sec. 4.2, Fig. 5).
(3) eta_sweep: the second early exit matters: stopping drafting on low confidence (eta > 0)
               beats always drafting gamma tokens (eta = 0) (Sec. 4.3, Fig. 6).
(4) adapter:   the adapter matters: drafting from the exit layer straight into the LM head is
               slower and accepted less (Sec. 4.3, Table 3 "w/o adapter").
(5) lossless_sampling: with temperature > 0 the speculative acceptance rule keeps the target's
               output distribution (our extension: the official code is greedy only). A
               two-sample chi-square test of next-token frequencies on a small vocabulary, with
               a power check: the same test at the same sample size must detect sampling from
               the draft alone.

Claims 1-4 share one byte-level target trained on the stdlib corpus and one adapter (an
in-process cache); claim 5 uses a small model over 8 character classes of the same corpus.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from paperlab.claims import Claim, PaperClaims, RunContext, all_of, at_least, custom
from paperlab.core.data.text import ByteTokenizer, code_prompts, load_corpus, random_batches
from paperlab.core.device import torch_threads
from paperlab.core.generate import generate, logits_to_probs
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.timing import time_interleaved
from paperlab.core.train import TrainConfig, train
from paperlab.papers.kangaroo.adapter import KangarooAdapter, evaluate_adapter, train_adapter
from paperlab.papers.kangaroo.decoding import KangarooDecoder


@dataclass
class KangarooClaimsConfig:
    # the byte-level target on the stdlib corpus (claims 1-4)
    dim: int = 64
    n_layers: int = 10
    n_heads: int = 2
    seq_len: int = 128
    batch_size: int = 16
    steps: int = 400
    lr: float = 5e-3
    # the adapter (Sec. 3.1; official run settings for Vicuna-7B: exit layer 2, eta 0.6, 6 steps)
    exit_layer: int = 2
    adapter_layers: int = 1
    adapter_steps: int = 600
    adapter_lr: float = 1e-2
    eval_batches: int = 4
    eta: float = 0.6
    gamma: int = 6
    etas: tuple[float, ...] = (0.0, 0.4, 0.6, 0.8)
    sweep_temperature: float = 1.0  # the eta sweep is judged on sampled decoding (0 = greedy)
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
    s_alpha: float = 0.01

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
        if self.sweep_temperature < 0:
            raise ValueError("sweep_temperature must be >= 0 (0 = greedy)")
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
# The shared target and adapter, trained once per process


_TRAINED: dict[tuple, tuple] = {}
_TARGET_FIELDS = ("dim", "n_layers", "n_heads", "seq_len", "batch_size", "steps", "lr")
_ADAPTER_FIELDS = ("exit_layer", "adapter_layers", "adapter_steps", "adapter_lr", "eval_batches")


def train_byte_target(
    cfg: KangarooClaimsConfig, seed: int, *, n_layers: int | None = None, progress: bool = False
) -> Llama:
    """A byte-level core Llama (cfg.n_layers deep unless `n_layers`) trained with next-token
    cross-entropy on the stdlib corpus: the target here, and in benchmarks/decode.py also the
    separately trained small draft of assisted generation (same recipe, fewer layers)."""
    # DEVIATION: a ~0.7M-parameter byte model trained for a minute stands in for Vicuna-7B/13B
    layers = cfg.n_layers if n_layers is None else n_layers
    torch.manual_seed(seed)
    model = Llama(
        LlamaConfig(
            vocab_size=256, dim=cfg.dim, n_layers=layers, n_heads=cfg.n_heads, max_seq_len=1024
        )
    )
    batches = random_batches(load_corpus(split="train"), cfg.batch_size, cfg.seq_len, seed)
    tcfg = TrainConfig(
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=max(1, cfg.steps // 10),
        progress=progress,
        seed=seed,
        desc=f"byte LM L={layers}",
    )
    train(model, _next_token_loss, batches, tcfg)
    return model.eval()


def _next_token_loss(model, batch):
    x, y = batch
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten())


def fit_adapter(
    model: Llama, cfg: KangarooClaimsConfig, seed: int, *, progress: bool = False
) -> tuple[KangarooAdapter, dict]:
    """The claims' adapter recipe on a frozen target: (adapter, info with the training history
    and validation soft-CE / expected acceptance before and after)."""
    # DEVIATION: soft labels from the frozen target on random corpus windows, computed on the
    # fly, instead of hidden states precomputed on ShareGPT conversations
    torch.manual_seed(seed)  # the adapter's initial weights depend on the seed only
    adapter = KangarooAdapter.for_model(
        model, exit_layer=cfg.exit_layer, n_layers=cfg.adapter_layers
    )
    val = lambda: random_batches(load_corpus(split="val"), 8, cfg.seq_len, 1234)  # noqa: E731
    before = evaluate_adapter(model, adapter, val(), cfg.eval_batches)
    start = time.perf_counter()
    batches = random_batches(load_corpus(split="train"), cfg.batch_size, cfg.seq_len, seed + 1)
    acfg = TrainConfig(
        steps=cfg.adapter_steps,
        lr=cfg.adapter_lr,
        warmup_steps=max(1, cfg.adapter_steps // 10),
        progress=progress,
        seed=seed,
        desc="kangaroo adapter",
    )
    history = train_adapter(model, adapter, batches, acfg)
    seconds = time.perf_counter() - start
    after = evaluate_adapter(model, adapter, val(), cfg.eval_batches)
    info = dict(adapter_seconds=seconds, before=before, after=after, history=history)
    return adapter.eval(), info


def trained_pair(cfg: KangarooClaimsConfig, seed: int, *, progress: bool = False):
    """(target, adapter, info) for claims 1-4, trained once per process; info holds training
    times and the adapter's validation metrics."""
    key = tuple(getattr(cfg, f) for f in _TARGET_FIELDS + _ADAPTER_FIELDS) + (seed,)
    if key not in _TRAINED:
        start = time.perf_counter()
        model = train_byte_target(cfg, seed, progress=progress)
        target_s = time.perf_counter() - start
        adapter, info = fit_adapter(model, cfg, seed, progress=progress)
        _TRAINED[key] = (model, adapter, info | {"target_seconds": target_s})
    return _TRAINED[key]


def plain_greedy(model: Llama, prompt: list[int], new_tokens: int) -> list[int]:
    """The baseline: core KV-cached greedy decoding of the whole target."""
    return generate(model, [prompt], max_new_tokens=new_tokens)[0]


def _decoding_setup(ctx: RunContext):
    cfg: KangarooClaimsConfig = ctx.config
    model, adapter, info = trained_pair(cfg, ctx.seed, progress=ctx.progress)
    ctx.notes["target_train_seconds"] = round(info["target_seconds"], 1)
    ctx.notes["adapter_train_seconds"] = round(info["adapter_seconds"], 1)
    return cfg, model, adapter, info, code_prompts(cfg.prompts, cfg.prompt_len)


def _time(ctx, cfg, model: Llama, prompts, decoders: dict, temperature: float = 0.0):
    """Interleaved timing of plain decoding and each named KangarooDecoder on every prompt:
    greedy (temperature 0) or sampling, every method drawing from one seeded generator."""
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


def _summary(timings, name: str, plain_out) -> dict[str, float]:
    results = timings.outputs[name]
    tokens = sum(len(r.tokens) for r in results)
    plain_tokens = sum(len(o) for o in plain_out)
    drafted = sum(r.drafted for r in results)
    return {
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
    cfg, model, adapter, info, prompts = _decoding_setup(ctx)
    dec = KangarooDecoder(model, adapter, eta=cfg.eta, gamma=cfg.gamma)
    timings = _time(ctx, cfg, model, prompts, {"kangaroo": dec})
    plain_out = timings.outputs["plain"]
    tokens = sum(len(o) for o in plain_out)
    out = _summary(timings, "kangaroo", plain_out)
    ctx.notes["sample_prompt"] = ByteTokenizer().decode(prompts[0])
    ctx.notes["sample_output"] = ByteTokenizer().decode(plain_out[0])
    _plot_speedup(ctx, timings, tokens)
    return out | {
        "plain_tokens_per_s": tokens / timings.median("plain"),
        "kangaroo_tokens_per_s": tokens / timings.median("kangaroo"),
        "adapter_params": adapter.num_params(),
        "target_params": model.num_params(),
        "extra_param_fraction": adapter.num_params() / model.num_params(),
    }


def _plot_speedup(ctx, timings, tokens) -> None:
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(8.5, 3.2))
    names = list(timings.seconds)
    a1.bar(names, [tokens / timings.median(n) for n in names], color=["C0", "C1"])
    a1.set_ylabel("tokens / s (batch 1, CPU)")
    a1.set_title("same target, identical output")
    lengths = [n for r in timings.outputs["kangaroo"] for n in r.accept_lengths]
    a2.hist(lengths, bins=[b + 0.5 for b in range(max(lengths) + 1)], rwidth=0.8)
    a2.set_xlabel("tokens per verification (accepted drafts + 1)")
    a2.set_ylabel("rounds")
    ctx.save_figure(fig, "speedup.png")


@torch.inference_mode()
def draft_agreement_by_depth(model: Llama, adapter: KangarooAdapter, cfg) -> dict[str, float]:
    """Teacher-forced top-1 agreement with the target on validation code: the adapter's draft vs
    the exit layer read straight through the target's head (no adapter)."""
    x, _ = next(random_batches(load_corpus(split="val"), 8, cfg.seq_len, 4321))
    h_exit = model.run_layers(model.embed(x), 0, adapter.exit_layer)
    target = model.head(model.run_layers(h_exit, adapter.exit_layer, None)).argmax(-1)
    return {
        "adapter_top1": float((adapter(model, h_exit).argmax(-1) == target).float().mean()),
        "no_adapter_top1": float((model.head(h_exit).argmax(-1) == target).float().mean()),
    }


def run_acceptance(ctx: RunContext) -> dict[str, float]:
    cfg, model, adapter, info, prompts = _decoding_setup(ctx)
    dec = KangarooDecoder(model, adapter, eta=cfg.eta, gamma=cfg.gamma)
    with torch_threads(cfg.decode_threads or torch.get_num_threads()):
        results = [dec.generate(p, max_new_tokens=cfg.new_tokens) for p in prompts]
    tokens = sum(len(r.tokens) for r in results)
    drafted, accepted = sum(r.drafted for r in results), sum(r.accepted for r in results)
    rounds = [n for r in results for n in r.accept_lengths]
    hist = info["history"]
    _plot_adapter_training(ctx, hist, info)
    return {
        "compression_rate": tokens / sum(r.target_forwards for r in results),
        "acceptance_rate": accepted / max(1, drafted),
        "drafts_per_round": drafted / max(1, len(rounds)),
        "mean_accept_length": statistics.fmean(rounds) if rounds else 0.0,
        "soft_ce_before": info["before"]["soft_ce"],
        "soft_ce_after": info["after"]["soft_ce"],
        "expected_accept_before": info["before"]["accept"],
        "expected_accept_after": info["after"]["accept"],
        "expected_accept_gain": info["after"]["accept"] - info["before"]["accept"],
    } | draft_agreement_by_depth(model, adapter, cfg)


def _plot_adapter_training(ctx, hist, info) -> None:
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(8.5, 3.2))
    a1.plot(hist["step"], hist["loss"], color="C1")
    a1.axhline(info["after"]["soft_ce"], color="k", ls="--", lw=0.8, label="validation, after")
    a1.set_xlabel("adapter step (target frozen)")
    a1.set_ylabel("soft cross-entropy to the target")
    a1.legend()
    a2.plot(hist["step"], hist["accept"], color="C2", label="train")
    a2.axhline(info["before"]["accept"], color="C0", ls=":", label="validation, before")
    a2.axhline(info["after"]["accept"], color="k", ls="--", lw=0.8, label="validation, after")
    a2.set_xlabel("adapter step")
    a2.set_ylabel("expected acceptance  E[sum min(p, q)]")
    a2.legend()
    ctx.save_figure(fig, "adapter_training.png")


# ---------------------------------------------------------------------------------------------
# (3) the eta sweep, (4) the adapter ablation


def _sweep(ctx, cfg, model, adapter, prompts, temperature: float) -> dict:
    decoders = {
        f"eta={e:g}": KangarooDecoder(model, adapter, eta=e, gamma=cfg.gamma) for e in cfg.etas
    }
    timings = _time(ctx, cfg, model, prompts, decoders, temperature)
    return {e: _summary(timings, f"eta={e:g}", timings.outputs["plain"]) for e in cfg.etas}


def run_eta_sweep(ctx: RunContext) -> dict[str, float]:
    cfg, model, adapter, info, prompts = _decoding_setup(ctx)
    # DEVIATION: the paper sweeps eta on greedy decoding; here the claim is
    # judged where the draft is uncertain: sampling at sweep_temperature (see README: the
    # miniature's greedy continuations are repetitive, drafts are ~always right there, and
    # an early stop can only cost); the greedy sweep is measured and reported alongside
    sweeps = {"greedy": _sweep(ctx, cfg, model, adapter, prompts, 0.0)}
    if cfg.sweep_temperature > 0:
        sweeps["sampled"] = _sweep(ctx, cfg, model, adapter, prompts, cfg.sweep_temperature)
    judged = sweeps["sampled" if cfg.sweep_temperature > 0 else "greedy"]
    out = {}
    for mode, rows in sweeps.items():
        for e, row in rows.items():
            out |= {f"{mode}_eta{e:g}_{k}": v for k, v in row.items() if k != "identical_fraction"}
    best_eta = max((e for e in cfg.etas if e > 0), key=lambda e: judged[e]["speedup"])
    _plot_eta(ctx, sweeps)
    return out | {
        "best_eta": best_eta,
        "best_speedup": judged[best_eta]["speedup"],
        "eta0_speedup": judged[0.0]["speedup"],
        "gain_over_eta0": judged[best_eta]["speedup"] / judged[0.0]["speedup"],
        "greedy_gain_over_eta0": max(r["speedup"] for e, r in sweeps["greedy"].items() if e > 0)
        / sweeps["greedy"][0.0]["speedup"],
        "temperature": cfg.sweep_temperature,
        "identical_fraction": min(r["identical_fraction"] for r in sweeps["greedy"].values()),
    }


def _plot_eta(ctx, sweeps) -> None:
    fig, axes = ctx.figure(1, len(sweeps), figsize=(4.6 * len(sweeps), 3.4), squeeze=False)
    for ax, (mode, rows) in zip(axes[0], sweeps.items(), strict=True):
        etas = sorted(rows)
        ax.plot(etas, [rows[e]["speedup"] for e in etas], "o-", label="speedup (tokens/s)")
        ax.plot(etas, [rows[e]["compression_rate"] for e in etas], "s--", label="tokens/target fwd")
        ax.plot(etas, [rows[e]["acceptance_rate"] for e in etas], "^:", label="drafts accepted")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel("eta (stop drafting when the draft's top-1 prob < eta)")
        ax.set_title(f"{mode} decoding")
        ax.legend(fontsize=8)
    ctx.save_figure(fig, "eta_sweep.png")


def run_adapter_ablation(ctx: RunContext) -> dict[str, float]:
    cfg, model, adapter, info, prompts = _decoding_setup(ctx)
    decoders = {
        "adapter": KangarooDecoder(model, adapter, eta=cfg.eta, gamma=cfg.gamma),
        "no_adapter": KangarooDecoder(
            model, None, exit_layer=cfg.exit_layer, eta=cfg.eta, gamma=cfg.gamma
        ),
    }
    timings = _time(ctx, cfg, model, prompts, decoders)
    plain_out = timings.outputs["plain"]
    out = {}
    for name in decoders:
        out |= {f"{name}_{k}": v for k, v in _summary(timings, name, plain_out).items()}
    return (
        out
        | {
            "speedup_ratio": out["adapter_speedup"] / out["no_adapter_speedup"],
            "identical_fraction": min(
                out["adapter_identical_fraction"], out["no_adapter_identical_fraction"]
            ),
        }
        | draft_agreement_by_depth(model, adapter, cfg)
    )


# ---------------------------------------------------------------------------------------------
# (5) lossless sampling: chi-square on 8 character classes

CLASS_NAMES = ("space", "newline", "lower", "upper", "digit", "underscore", "bracket", "other")


def char_classes(data: torch.Tensor) -> torch.Tensor:
    """Bytes -> 8 classes (CLASS_NAMES): a small-vocabulary sequence with real structure."""
    table = torch.full((256,), 7, dtype=torch.long)
    table[ord(" ")], table[ord("\n")], table[ord("_")] = 0, 1, 5
    for lo, hi, c in (("a", "z", 2), ("A", "Z", 3), ("0", "9", 4)):
        table[ord(lo) : ord(hi) + 1] = c
    for ch in "()[]{}":
        table[ord(ch)] = 6
    return table[data.long()]


def chi_square_homogeneity(
    a: torch.Tensor, b: torch.Tensor, vocab: int
) -> tuple[float, int, float]:
    """Two-sample chi-square test that token samples a and b (1-D) come from one distribution:
    (statistic, degrees of freedom, p-value). Categories empty in both samples are dropped."""
    counts = torch.stack([torch.bincount(a, minlength=vocab), torch.bincount(b, minlength=vocab)])
    counts = counts[:, counts.sum(0) > 0].double()
    expected = counts.sum(1, keepdim=True) * counts.sum(0, keepdim=True) / counts.sum()
    stat = float(((counts - expected) ** 2 / expected).sum())
    dof = counts.shape[1] - 1
    if dof == 0:
        return 0.0, 0, 1.0
    p = float(torch.special.gammaincc(torch.tensor(dof / 2.0), torch.tensor(stat / 2.0)))
    return stat, dof, p


def positions_test(x: torch.Tensor, y: torch.Tensor, vocab: int) -> tuple[float, list[float]]:
    """Per generated position (columns of x, y: (N, T)) a homogeneity test; returns the
    Bonferroni-combined p-value min(1, T * min p) and the per-position p-values."""
    ps = [chi_square_homogeneity(x[:, t], y[:, t], vocab)[2] for t in range(x.shape[1])]
    return min(1.0, len(ps) * min(ps)), ps


@torch.inference_mode()
def sample_from_draft(model, adapter, prompt, n, new_tokens, temperature, generator):
    """n independent samples from the draft model alone (shallow layers + adapter + head)."""
    seqs = torch.tensor([prompt] * n)
    for _ in range(new_tokens):
        h_exit = model.run_layers(model.embed(seqs), 0, adapter.exit_layer)
        q = logits_to_probs(adapter(model, h_exit)[:, -1], temperature=temperature)
        seqs = torch.cat([seqs, torch.multinomial(q, 1, generator=generator)], dim=1)
    return seqs[:, len(prompt) :]


def run_lossless_sampling(ctx: RunContext) -> dict[str, float]:
    cfg: KangarooClaimsConfig = ctx.config
    V, T = len(CLASS_NAMES), cfg.s_new_tokens
    torch.manual_seed(ctx.seed)
    model = Llama(
        LlamaConfig(
            vocab_size=V, dim=cfg.s_dim, n_layers=cfg.s_layers, n_heads=cfg.s_heads, max_seq_len=256
        )
    )
    data = char_classes(load_corpus(split="train"))
    tcfg = TrainConfig(
        steps=cfg.s_steps,
        lr=5e-3,
        warmup_steps=max(1, cfg.s_steps // 10),
        progress=ctx.progress,
        seed=ctx.seed,
        desc="8-class target",
    )
    train(model, _next_token_loss, random_batches(data, 16, 64, ctx.seed), tcfg)
    model.eval()
    adapter = KangarooAdapter.for_model(model, exit_layer=cfg.s_exit_layer)
    acfg = TrainConfig(steps=cfg.s_adapter_steps, lr=3e-3, progress=False, seed=ctx.seed)
    train_adapter(model, adapter, random_batches(data, 16, 64, ctx.seed + 1), acfg)
    adapter.eval()
    prompt = char_classes(torch.tensor(code_prompts(1, cfg.s_prompt_len)[0])).tolist()
    gen = torch.Generator().manual_seed(ctx.seed)
    n = cfg.s_samples
    plain = torch.tensor(
        generate(
            model, [prompt] * n, max_new_tokens=T, temperature=cfg.s_temperature, generator=gen
        )
    )
    dec = KangarooDecoder(model, adapter, eta=cfg.s_eta, gamma=cfg.s_gamma)
    results = []
    for _ in tqdm(range(n), desc="kangaroo sampling", disable=not ctx.progress):
        results.append(
            dec.generate(prompt, max_new_tokens=T, temperature=cfg.s_temperature, generator=gen)
        )
    kangaroo = torch.tensor([r.tokens for r in results])
    draft = sample_from_draft(model, adapter, prompt, n, T, cfg.s_temperature, gen)
    # the first token comes from the target's prefill in every method: test positions 2..T
    p_same, ps_same = positions_test(kangaroo[:, 1:], plain[:, 1:], V)
    p_power, ps_power = positions_test(draft[:, 1:], plain[:, 1:], V)
    drafted, accepted = sum(r.drafted for r in results), sum(r.accepted for r in results)
    _plot_sampling(ctx, plain, kangaroo, draft, V)
    out = {
        "p_kangaroo_vs_plain": p_same,
        "p_draft_vs_plain": p_power,
        "alpha": cfg.s_alpha,
        "samples": n,
        "acceptance_rate": accepted / max(1, drafted),
        "tv_draft_vs_plain": _tv(draft[:, 1:], plain[:, 1:], V),
        "tv_kangaroo_vs_plain": _tv(kangaroo[:, 1:], plain[:, 1:], V),
    }
    return out | {f"p_pos{t + 2}": p for t, p in enumerate(ps_same)}


def _tv(x: torch.Tensor, y: torch.Tensor, vocab: int) -> float:
    """Mean over positions of the total-variation distance between empirical marginals."""
    tvs = []
    for t in range(x.shape[1]):
        px = torch.bincount(x[:, t], minlength=vocab).double() / len(x)
        py = torch.bincount(y[:, t], minlength=vocab).double() / len(y)
        tvs.append(0.5 * float((px - py).abs().sum()))
    return statistics.fmean(tvs)


def _judge_lossless(m) -> tuple[str, str]:
    alpha = m["alpha"]
    if m["p_draft_vs_plain"] >= alpha:
        return "inconclusive", (
            f"the test cannot tell the draft alone from the target at n={m['samples']:.0f} "
            f"(p={m['p_draft_vs_plain']:.3g}): no power"
        )
    if m["p_kangaroo_vs_plain"] < alpha:
        return (
            "fails",
            f"Kangaroo sampling differs from plain sampling (p={m['p_kangaroo_vs_plain']:.3g})",
        )
    return "holds", (
        f"no detectable difference (p={m['p_kangaroo_vs_plain']:.3g} >= {alpha:g}) while the "
        f"same test detects draft-only sampling (p={m['p_draft_vs_plain']:.2g})"
    )


def _plot_sampling(ctx, plain, kangaroo, draft, vocab) -> None:
    fig, axes = ctx.figure(
        1, plain.shape[1] - 1, figsize=(3.2 * (plain.shape[1] - 1), 3.0), squeeze=False
    )
    width = 0.28
    for t, ax in enumerate(axes[0], start=1):
        for k, (name, s) in enumerate(
            (("plain", plain), ("kangaroo", kangaroo), ("draft only", draft))
        ):
            freq = torch.bincount(s[:, t], minlength=vocab).double() / len(s)
            ax.bar([v + (k - 1) * width for v in range(vocab)], freq.tolist(), width, label=name)
        ax.set_xticks(range(vocab))
        ax.set_xticklabels([c[:3] for c in CLASS_NAMES], rotation=60, fontsize=7)
        ax.set_title(f"new token {t + 1}")
    axes[0][0].set_ylabel("frequency")
    axes[0][0].legend(fontsize=7)
    ctx.save_figure(fig, "sampling.png")


# ---------------------------------------------------------------------------------------------

PAPER = PaperClaims(
    config=KangarooClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="speedup",
            statement="Kangaroo (shallow layers + adapter draft, double early exit) decodes "
            "faster than plain KV-cached greedy decoding of the same target, with identical "
            "output (Sec. 4.2)",
            paper_figure="up to 1.68x on Spec-Bench (Vicuna-7B); 67M extra params vs Medusa's 591M",
            criterion=all_of(
                at_least("speedup", 1.0, margin=0.05), at_least("identical_fraction", 1.0)
            ),
            run=run_speedup,
            ours="{speedup:.2f}x ({kangaroo_tokens_per_s:.0f} vs {plain_tokens_per_s:.0f} "
            "tokens/s), {compression_rate:.2f} tokens/target forward, identical "
            "{identical_fraction:.0%}; adapter = {extra_param_fraction:.1%} of the target",
        ),
        Claim(
            id="acceptance",
            statement="the self-draft is accepted often enough to compress decoding: more than "
            "one token per target forward at eta=0.6, gamma=6 (Sec. 4.2, compression rate)",
            paper_figure="compression rate > 1 on every Spec-Bench subtask (Vicuna-7B)",
            criterion=all_of(
                at_least("compression_rate", 1.2, margin=0.1),
                at_least("expected_accept_gain", 0.01),
            ),
            run=run_acceptance,
            ours="{compression_rate:.2f} tokens/target forward, drafts accepted "
            "{acceptance_rate:.0%}; adapter training: soft-CE {soft_ce_before:.2f} -> "
            "{soft_ce_after:.2f}, E[accept] {expected_accept_before:.2f} -> "
            "{expected_accept_after:.2f}",
        ),
        Claim(
            id="eta_sweep",
            statement="the second early exit matters: stopping drafting when the draft's top-1 "
            "probability < eta beats always drafting gamma tokens (eta=0) (Sec. 4.3); judged "
            "on sampled decoding, where the draft is uncertain",
            paper_figure="eta=0.6 best; no early stop is slower (Vicuna-7B)",
            criterion=all_of(
                at_least("gain_over_eta0", 1.0, margin=0.03), at_least("identical_fraction", 1.0)
            ),
            run=run_eta_sweep,
            ours="sampled (T={temperature:g}): best eta={best_eta:g} {best_speedup:.2f}x vs "
            "eta=0 {eta0_speedup:.2f}x (gain {gain_over_eta0:.2f}x); greedy: best/eta=0 "
            "{greedy_gain_over_eta0:.2f}x",
        ),
        Claim(
            id="adapter",
            statement="the adapter matters: drafting from the exit layer straight into the LM "
            "head is slower (Sec. 4.3, Table 3, 'w/o adapter')",
            paper_figure="speedup drops without the adapter (Table 3)",
            criterion=all_of(
                at_least("speedup_ratio", 1.0, margin=0.03), at_least("identical_fraction", 1.0)
            ),
            run=run_adapter_ablation,
            ours="with adapter {adapter_speedup:.2f}x ({adapter_acceptance_rate:.0%} accepted) "
            "vs without {no_adapter_speedup:.2f}x ({no_adapter_acceptance_rate:.0%}); top-1 "
            "agreement {adapter_top1:.0%} vs {no_adapter_top1:.0%}",
        ),
        Claim(
            id="lossless_sampling",
            statement="with temperature > 0 the speculative acceptance rule keeps the target's "
            "distribution: Kangaroo sampling and plain sampling are indistinguishable "
            "(our extension; the official code is greedy-only)",
            paper_figure="lossless by construction (speculative sampling, Leviathan et al. 2023)",
            criterion=custom(
                "chi-square homogeneity (Bonferroni over positions) p >= alpha for Kangaroo vs "
                "plain, while the same test rejects draft-only vs plain (else inconclusive)",
                _judge_lossless,
            ),
            run=run_lossless_sampling,
            ours="p={p_kangaroo_vs_plain:.2f} (Kangaroo vs plain, n={samples:.0f}); the same "
            "test on draft-only sampling: p={p_draft_vs_plain:.1g}",
        ),
    ],
)
