"""The claims' runs: M0 per seed (SFT on gold chains of thought), then Iterative RPO from it
with DPO + NLL (alpha = 1) and with DPO alone (alpha = 0), same samples' seeds, same problems.

Every training goes through ``ctx.shared`` with a codec, so a second ``reproduce`` loads M0 and
the iteration histories from the disk cache. Independent trainings run in worker processes
(``core.parallel.run_jobs``): the seeds' M0s, then the (seed, arm) chains.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import JSONCodec, ModuleCodec
from paperlab.core.parallel import run_jobs
from paperlab.core.stats import paired_bootstrap
from paperlab.papers.irpo.irpo import IRPOConfig, iterative_rpo, sft, tiny_llama
from paperlab.papers.irpo.task import sample_chains

ARMS = {"dpo_nll": None, "dpo": 0.0}  # alpha: None = the config's alpha (1); 0 = DPO alone


def _problems(cfg: Any, seed: int) -> dict[str, list]:
    """Disjoint SFT / training / test problems (drawn from one seeded stream, deduplicated)."""
    import random

    rng = random.Random(10_007 * seed + 17)
    need = cfg.sft_examples + cfg.train_problems + cfg.test_problems
    seen, pool = set(), []
    while len(pool) < need:
        for p in sample_chains(need, steps=cfg.chain_steps, max_operand=cfg.max_operand, seed=rng):
            if p not in seen and len(pool) < need:
                seen.add(p)
                pool.append(p)
    a, b = cfg.sft_examples, cfg.sft_examples + cfg.train_problems
    return {"sft": pool[:a], "train": pool[a:b], "test": pool[b:]}


def _arch(cfg: Any) -> dict[str, int]:
    return dict(dim=cfg.dim, n_layers=cfg.n_layers, n_heads=cfg.n_heads)


def irpo_config(cfg: Any, alpha: float | None) -> IRPOConfig:
    return IRPOConfig(
        iterations=cfg.iterations,
        samples=cfg.samples,
        pairs=cfg.pairs,
        temperature=cfg.temperature,
        beta=cfg.beta,
        alpha=cfg.alpha if alpha is None else alpha,
        nll=cfg.nll,
        steps=cfg.dpo_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        maj_k=cfg.maj_k,
    )


# ---------------------------------------------------------------------------------------------
# Jobs (module-level, picklable arguments)


def train_m0(*, cfg: dict, seed: int, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    from types import SimpleNamespace

    c = SimpleNamespace(**cfg)
    torch.manual_seed(seed)
    model = tiny_llama(**_arch(c))
    hist = sft(
        model,
        _problems(c, seed)["sft"],
        steps=c.sft_steps,
        lr=c.sft_lr,
        batch_size=c.sft_batch,
        seed=seed,
        device=device,
    )
    return {k: v.cpu() for k, v in model.state_dict().items()}, {"sft_loss": hist["loss"][-1]}


def run_chain(
    *, cfg: dict, seed: int, alpha: float | None, m0: dict, device: str = "cpu"
) -> list[dict]:
    from types import SimpleNamespace

    c = SimpleNamespace(**cfg)
    model = tiny_llama(**_arch(c))
    model.load_state_dict(m0)
    data = _problems(c, seed)
    result = iterative_rpo(
        model,
        data["train"],
        irpo_config(c, alpha),
        eval_problems=data["test"],
        seed=seed,
        device=device,
    )
    return result.history  # figures only (the models stay in the worker)


# ---------------------------------------------------------------------------------------------
# The shared trainings


def _m0_spec(cfg: Any) -> dict:
    keys = ("dim", "n_layers", "n_heads", "sft_examples", "sft_steps", "sft_lr", "sft_batch")
    keys += ("train_problems", "test_problems", "chain_steps", "max_operand")
    return {k: getattr(cfg, k) for k in keys}


def seeds(ctx: RunContext) -> list[int]:
    return [ctx.seed + k for k in range(ctx.config.seeds)]


def m0_models(ctx: RunContext) -> dict[int, Any]:
    cfg = ctx.config
    codec = ModuleCodec(build=lambda: tiny_llama(**_arch(cfg)), kind="irpo-m0")
    cached: dict[int, Any] = {}
    todo = []
    for s in seeds(ctx):
        try:
            cached[s] = _get(ctx, "irpo-m0", _m0_spec(cfg), s, codec)
        except _NotCached:
            todo.append(s)
    if todo:
        jobs = [(train_m0, dict(cfg=vars(cfg).copy(), seed=s, device=ctx.device)) for s in todo]
        out = run_jobs(jobs, workers=cfg.workers, progress=ctx.progress, desc="irpo: M0 (SFT)")
        for s, (state, info) in zip(todo, out, strict=True):
            model = tiny_llama(**_arch(cfg))
            model.load_state_dict(state)
            cached[s] = _get(ctx, "irpo-m0", _m0_spec(cfg), s, codec, (model.eval(), info))
    return cached


def histories(ctx: RunContext) -> dict[tuple[int, str], list[dict]]:
    """``(seed, arm) -> history`` (one record per M_0..M_T) for both arms and every seed."""
    cfg = ctx.config
    m0 = m0_models(ctx)
    spec = dict(_m0_spec(cfg), **asdict(irpo_config(cfg, None)))
    out: dict[tuple[int, str], list[dict]] = {}
    todo = []
    for s in seeds(ctx):
        for arm, alpha in ARMS.items():
            try:
                out[(s, arm)] = _get(ctx, "irpo-chain", dict(spec, arm=arm), s, JSONCodec())
            except _NotCached:
                todo.append((s, arm, alpha))
    if todo:
        jobs = [
            (
                run_chain,
                dict(
                    cfg=vars(cfg).copy(),
                    seed=s,
                    alpha=a,
                    m0=m0[s][0].state_dict(),
                    device=ctx.device,
                ),
            )
            for s, _, a in todo
        ]
        res = run_jobs(jobs, workers=cfg.workers, progress=ctx.progress, desc="irpo: iterations")
        for (s, arm, _), hist in zip(todo, res, strict=True):
            out[(s, arm)] = _get(ctx, "irpo-chain", dict(spec, arm=arm), s, JSONCodec(), hist)
    return out


class _NotCached(Exception):
    pass


def _get(ctx: RunContext, name: str, spec: dict, seed: int, codec: Any, value: Any = None):
    """From this run's memory or the disk cache; with ``value``: store it there."""

    def build() -> Any:
        if value is None:
            raise _NotCached
        return value

    return ctx.shared(name, build, spec=dict(spec, seed=seed), codec=codec)


# ---------------------------------------------------------------------------------------------
# Figures shared by the claims


def power(ctx: RunContext, runs: dict) -> dict[str, float]:
    """M0's greedy test accuracy and the fraction of training problems that gave >= 1 pair in
    iteration 1 (means over seeds): the miniature is powered when both leave room."""
    first = [runs[(s, "dpo_nll")] for s in seeds(ctx)]
    return {
        "m0_acc": float(np.mean([h[0]["greedy_acc"] for h in first])),
        "pair_fraction": float(np.mean([h[1]["pair_fraction"] for h in first])),
    }


def paired(a: list[list[int]], b: list[list[int]], seed: int) -> dict[str, float]:
    """mean(a - b) over problems pooled across seeds, and its 90% bootstrap interval."""
    x = [v for row in a for v in row]
    y = [v for row in b for v in row]
    diff, low, high = paired_bootstrap(x, y, seed=seed)
    return {"diff": diff, "low": low, "high": high}


def _acc_table(ctx: RunContext, runs: dict, arm: str, key: str) -> dict[str, float]:
    out = {}
    for t in range(ctx.config.iterations + 1):
        vals = [runs[(s, arm)][t][key] for s in seeds(ctx)]
        out[f"{arm}_{key}_m{t}"] = float(np.mean(vals))
    return out


def _seed_spread(ctx: RunContext, runs: dict, arm: str) -> float:
    T = ctx.config.iterations
    gains = [runs[(s, arm)][T]["greedy_acc"] - runs[(s, arm)][0]["greedy_acc"] for s in seeds(ctx)]
    return float(np.std(gains, ddof=1)) if len(gains) > 1 else 0.0


def run_iterations(ctx: RunContext) -> dict[str, float]:
    """(1) greedy accuracy of M_T - M_0 under DPO + NLL, paired over test problems x seeds."""
    from paperlab.papers.irpo.plots import plot_accuracy

    runs = histories(ctx)
    T = ctx.config.iterations
    s = seeds(ctx)
    d = paired(
        [runs[(k, "dpo_nll")][T]["greedy_correct"] for k in s],
        [runs[(k, "dpo_nll")][0]["greedy_correct"] for k in s],
        ctx.seed,
    )
    per_seed = {
        f"gain_seed{k}": runs[(k, "dpo_nll")][T]["greedy_acc"]
        - runs[(k, "dpo_nll")][0]["greedy_acc"]
        for k in s
    }
    plot_accuracy(ctx, runs, seeds(ctx))
    return {
        **power(ctx, runs),
        "gain": d["diff"],
        "gain_low": d["low"],
        "gain_seed_std": _seed_spread(ctx, runs, "dpo_nll"),
        **per_seed,
        **_acc_table(ctx, runs, "dpo_nll", "greedy_acc"),
        "final_acc": runs_mean(ctx, runs, "dpo_nll", T, "greedy_acc"),
    }


def runs_mean(ctx: RunContext, runs: dict, arm: str, t: int, key: str) -> float:
    return float(np.mean([runs[(s, arm)][t][key] for s in seeds(ctx)]))


def run_nll_ablation(ctx: RunContext) -> dict[str, float]:
    """(2) final greedy accuracy, DPO + NLL - DPO alone, paired over test problems x seeds."""
    runs = histories(ctx)
    T = ctx.config.iterations
    s = seeds(ctx)
    d = paired(
        [runs[(k, "dpo_nll")][T]["greedy_correct"] for k in s],
        [runs[(k, "dpo")][T]["greedy_correct"] for k in s],
        ctx.seed,
    )
    return {
        **power(ctx, runs),
        "nll_minus_dpo": d["diff"],
        "nll_minus_dpo_low": d["low"],
        "acc_dpo_nll": runs_mean(ctx, runs, "dpo_nll", T, "greedy_acc"),
        "acc_dpo": runs_mean(ctx, runs, "dpo", T, "greedy_acc"),
        "gain_dpo": runs_mean(ctx, runs, "dpo", T, "greedy_acc")
        - runs_mean(ctx, runs, "dpo", 0, "greedy_acc"),
        "gain_dpo_nll": runs_mean(ctx, runs, "dpo_nll", T, "greedy_acc")
        - runs_mean(ctx, runs, "dpo_nll", 0, "greedy_acc"),
        **_acc_table(ctx, runs, "dpo", "greedy_acc"),
    }


def run_chosen_logprob(ctx: RunContext) -> dict[str, float]:
    """(3) change of the winners' log-prob over iteration 1's training (same M0, same pairs for
    both arms), mean over seeds; all iterations' mean reported too."""
    from paperlab.papers.irpo.plots import plot_logprobs

    runs = histories(ctx)
    out = power(ctx, runs)
    for arm in ARMS:
        first = [runs[(s, arm)][1] for s in seeds(ctx)]
        change = [h["chosen_logp_after"] - h["chosen_logp_before"] for h in first]
        rej = [h["rejected_logp_after"] - h["rejected_logp_before"] for h in first]
        every = [
            h["chosen_logp_after"] - h["chosen_logp_before"]
            for s in seeds(ctx)
            for h in runs[(s, arm)][1:]
        ]
        out[f"{arm}_chosen_change"] = float(np.mean(change))
        out[f"{arm}_chosen_change_max"] = float(np.max(change))
        out[f"{arm}_chosen_change_min"] = float(np.min(change))
        out[f"{arm}_rejected_change"] = float(np.mean(rej))
        out[f"{arm}_chosen_change_all_iters"] = float(np.mean(every))
    plot_logprobs(ctx, runs, seeds(ctx))
    # an iteration without pairs has no log-prob change (NaN): left out, and the claim is
    # inconclusive through its powering figure (pair_fraction)
    return {k: v for k, v in out.items() if np.isfinite(v)}


def run_majority(ctx: RunContext) -> dict[str, float]:
    """(4) maj@k - greedy accuracy of every DPO + NLL model M_1..M_T, paired over test problems
    x seeds x iterations."""
    runs = histories(ctx)
    T = ctx.config.iterations
    models = [runs[(s, "dpo_nll")][t] for s in seeds(ctx) for t in range(1, T + 1)]
    d = paired([h["maj_correct"] for h in models], [h["greedy_correct"] for h in models], ctx.seed)
    return {
        **power(ctx, runs),
        "maj_minus_greedy": d["diff"],
        "maj_minus_greedy_low": d["low"],
        "maj_minus_greedy_high": d["high"],
        "maj_acc_final": runs_mean(ctx, runs, "dpo_nll", T, "maj_acc"),
        "greedy_acc_final": runs_mean(ctx, runs, "dpo_nll", T, "greedy_acc"),
        "k": float(ctx.config.maj_k),
    }
