"""The claims' runs: the world's models (trained once per run, kept in the artifact cache),
ASR against baselines, generation vs optimisation speed, and adversarial hardening."""

from __future__ import annotations

import random
from typing import Any

import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import ModuleCodec
from paperlab.core.timing import time_interleaved
from paperlab.papers.advprompter.models import (
    ModelSize,
    alphabet_mask,
    build_llama,
    make_prompter,
    sample_suffixes,
    suffix_perplexity,
    train_base,
    train_target,
)
from paperlab.papers.advprompter.opt import OptParams, advprompter_opt
from paperlab.papers.advprompter.training import (
    PrompterTraining,
    asr_at_k,
    jailbroken,
    task_accuracy,
    train_prompter,
)
from paperlab.papers.advprompter.world import (
    REFUSAL,
    TRIGGER_WORDS,
    default_tokenizer,
    random_suffix,
    requests,
    split_refused,
    suffix_words,
)


def _size(cfg: Any) -> ModelSize:
    return ModelSize(dim=cfg.dim, n_layers=cfg.n_layers, n_heads=cfg.n_heads)


def _fields(cfg: Any, *names: str) -> dict[str, Any]:
    return {n: getattr(cfg, n) for n in names}


def opt_params(cfg: Any) -> OptParams:
    return OptParams(
        max_new_tokens=cfg.suffix_len,
        num_beams=cfg.num_beams,
        top_k=cfg.top_k,
        lambda_val=cfg.lambda_val,
    )


def _train_target(cfg: Any, seed: int, progress: bool, device: str):
    tok = default_tokenizer()
    return train_target(
        tok,
        _size(cfg),
        steps=cfg.target_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        max_suffix=cfg.suffix_len,
        p_trigger=cfg.p_trigger,
        chain_seed=seed,
        seed=seed,
        progress=progress,
        device=device,
    )


def _lora_codec(cfg: Any, tok) -> ModuleCodec:
    build = lambda: make_prompter(build_llama(tok.vocab_size, _size(cfg)))  # noqa: E731
    return ModuleCodec(build=build, kind="AdvPrompterPrompter")


def _train_prompter(ctx: RunContext, base, target, train_set, allowed) -> tuple[Any, dict]:
    """AdvPrompterTrain of a fresh prompter (LoRA on ``base``) against ``target``."""
    prompter = make_prompter(base, seed=ctx.seed)
    recipe = PrompterTraining(epochs=ctx.config.epochs, opt=opt_params(ctx.config))
    hist = train_prompter(
        prompter,
        target,
        default_tokenizer(),
        train_set,
        allowed,
        recipe,
        seed=ctx.seed,
        progress=ctx.progress,
        device=ctx.device,
    )
    return prompter, {"history": hist}


def world(ctx: RunContext) -> dict[str, Any]:
    """The tokenizer, the target, the base, the untrained and the trained prompter, the split."""
    cfg, seed, tok = ctx.config, ctx.seed, default_tokenizer()
    size = _size(cfg)
    arch = _fields(cfg, "dim", "n_layers", "n_heads") | {"vocab": tok.id}

    def codec(kind: str) -> ModuleCodec:
        return ModuleCodec(build=lambda: build_llama(tok.vocab_size, size), kind=kind)

    target_spec = arch | _fields(cfg, "target_steps", "batch_size", "lr", "suffix_len", "p_trigger")
    target, target_info = ctx.shared(
        "advprompter-target",
        lambda: _train_target(cfg, seed, ctx.progress, ctx.device),
        spec=target_spec,
        codec=codec("AdvPrompterTarget"),
    )
    base_spec = arch | _fields(cfg, "base_steps", "batch_size", "lr", "suffix_len")
    base, base_info = ctx.shared(
        "advprompter-base",
        lambda: train_base(
            tok,
            size,
            steps=cfg.base_steps,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            suffix_len=cfg.suffix_len,
            chain_seed=seed,
            seed=seed + 1,
            progress=ctx.progress,
            device=ctx.device,
        ),
        spec=base_spec,
        codec=codec("AdvPrompterBase"),
    )
    target, base = target.to(ctx.device), base.to(ctx.device)
    train_set, test_set = split_refused(cfg.n_test, seed)
    train_set = train_set[: cfg.n_train]
    allowed = alphabet_mask(tok, suffix_words())

    def train_it():
        return _train_prompter(ctx, base, target, train_set, allowed)

    prompter_spec = (
        target_spec
        | base_spec
        | _fields(cfg, "epochs", "n_train", "n_test", "num_beams", "top_k", "lambda_val")
    )
    prompter, prompter_info = ctx.shared(
        "advprompter-prompter", train_it, spec=prompter_spec, codec=_lora_codec(cfg, tok)
    )
    return dict(
        tok=tok,
        target=target,
        base=base,
        prompter=prompter.to(ctx.device),
        train_set=train_set,
        test_set=test_set,
        allowed=allowed,
        history=prompter_info["history"],
        target_info=target_info,
        base_info=base_info,
        untrained=make_prompter(base, seed=seed),
    )


def _generator(cfg: Any, tok, model, allowed, gen):
    return lambda xs: sample_suffixes(model, tok, xs, allowed, length=cfg.suffix_len, generator=gen)


def powering(ctx: RunContext, w: dict) -> dict[str, float]:
    """Can the target refuse the class, and does the pattern steer it when known?"""
    tok, target, test = w["tok"], w["target"], w["test_set"]
    rng = random.Random(ctx.seed + 5)
    instructs = [r.text for r in test]
    plain = jailbroken(target, tok, instructs, [""] * len(test))
    oracle = []
    for _ in range(3):  # a trigger word at a random place in a random suffix
        words = random_suffix(ctx.config.suffix_len - 1, rng).split()
        words.insert(rng.randint(0, len(words)), rng.choice(("velvet", "harbor")))
        oracle.append(" ".join(words))
    hits = [jailbroken(target, tok, instructs, [s] * len(test)) for s in oracle]
    return {
        "refusal_plain": 1 - sum(plain) / len(plain),
        "oracle_asr": sum(map(sum, hits)) / (len(hits) * len(test)),
        "task_acc": task_accuracy(target, tok, requests(refused=False)),
    }


def run_asr(ctx: RunContext) -> dict[str, float]:
    cfg, w = ctx.config, world(ctx)
    k = cfg.k
    tok, target, base, test, allowed = w["tok"], w["target"], w["base"], w["test_set"], w["allowed"]
    gen = torch.Generator().manual_seed(ctx.seed + 11)
    rng = random.Random(ctx.seed + 13)
    methods = {
        "trained": _generator(cfg, tok, w["prompter"], allowed, gen),
        "untrained": _generator(cfg, tok, w["untrained"], allowed, gen),
        "random": lambda xs: [random_suffix(cfg.suffix_len, rng) for _ in xs],
    }
    out = powering(ctx, w)
    for name, fn in methods.items():
        res = asr_at_k(fn, target, tok, test, k)
        out[f"asr1_{name}"], out[f"asrk_{name}"] = res["asr1"], res["asrk"]
        ctx.notes[f"suffixes_{name}"] = res["suffixes"][:5]
        out[f"distinct_{name}"] = len(set(res["suffixes"])) / len(res["suffixes"])
        # the suffixes of trial t are rows t*n..; instructs in the same order
        by_trial = [r.text for _ in range(k) for r in test]
        ppl = suffix_perplexity(base, tok, by_trial, res["suffixes"])
        out[f"ppl_{name}"] = float(ppl.mean())
    out["k"] = float(k)
    hist = w["history"]
    last = hist.get("opt_jailbroken") or [float("nan")]
    out["train_opt_jailbroken_last"] = last[-1]
    out["target_final_loss"] = w["target_info"]["final_loss"]
    from paperlab.papers.advprompter import plots

    plots.plot_training(ctx, hist)
    return out


# DEVIATION: the optimisation side is AdvPrompterOpt itself (GCG / AutoDAN, the paper's
# comparison, are not implemented).
def run_speed(ctx: RunContext) -> dict[str, float]:
    """Seconds per suffix: sampling from the trained prompter vs AdvPrompterOpt (started from
    the untrained prompter, as an attack without AdvPrompter would be), each on one batch of
    ``time_requests`` held-out requests (batches of 8 as in training), interleaved."""
    cfg, w = ctx.config, world(ctx)
    tok, target, allowed = w["tok"], w["target"], w["allowed"]
    reqs = w["test_set"][: cfg.time_requests]
    instructs, targets = [r.text for r in reqs], [r.target for r in reqs]
    gen = torch.Generator().manual_seed(ctx.seed + 17)
    params = opt_params(cfg)
    methods = {
        "generate": lambda xs: sample_suffixes(
            w["prompter"], tok, xs, allowed, length=cfg.suffix_len, generator=gen
        ),
        "optimise": lambda xs: advprompter_opt(
            w["untrained"], target, tok, xs, targets, allowed, params, generator=gen
        ),
    }
    timings = time_interleaved(
        methods, [instructs], reps=cfg.time_reps, progress=ctx.progress, desc="timing"
    )
    n = len(reqs)
    opt_ok = jailbroken(target, tok, instructs, timings.outputs["optimise"][0])
    gen_ok = jailbroken(target, tok, instructs, timings.outputs["generate"][0])
    return {
        "sec_per_generated": timings.median("generate") / n,
        "sec_per_optimised": timings.median("optimise") / n,
        "speedup": timings.ratio("optimise", "generate"),
        "opt_success": sum(opt_ok) / n,
        "gen_success": sum(gen_ok) / n,
        "requests": float(n),
    }


def _harden(ctx: RunContext, w: dict) -> tuple[Any, dict]:
    """Adversarial fine-tuning: the prompter's suffixes on the *training* requests paired with
    the refusal, mixed with the target's own data (Sec. 4.3).

    DEVIATION: the mix (a third adversarial pairs), steps and lr are ours; the ordinary task
    stands in for MMLU."""
    cfg, tok = ctx.config, w["tok"]
    gen = torch.Generator().manual_seed(ctx.seed + 19)
    pairs = []
    for _ in range(cfg.harden_samples):
        instructs = [r.text for r in w["train_set"]]
        suffixes = sample_suffixes(
            w["prompter"], tok, instructs, w["allowed"], length=cfg.suffix_len, generator=gen
        )
        pairs += [(f"{x} {s}", REFUSAL) for x, s in zip(instructs, suffixes, strict=True)]
    import copy

    model = copy.deepcopy(w["target"])
    return train_target(
        tok,
        _size(cfg),
        steps=cfg.harden_steps,
        batch_size=cfg.batch_size,
        lr=cfg.harden_lr,
        max_suffix=cfg.suffix_len,
        p_trigger=cfg.p_trigger,
        chain_seed=ctx.seed,
        seed=ctx.seed + 23,
        extra=pairs,
        model=model,
        progress=ctx.progress,
        desc="harden",
        device=ctx.device,
    )


def run_harden(ctx: RunContext) -> dict[str, float]:
    cfg, w = ctx.config, world(ctx)
    k = cfg.k
    tok, test, allowed = w["tok"], w["test_set"], w["allowed"]
    spec = _fields(cfg, *[f.name for f in cfg.__dataclass_fields__.values()])
    hardened, _ = ctx.shared(
        "advprompter-hardened",
        lambda: _harden(ctx, w),
        spec=spec,
        codec=ModuleCodec(
            build=lambda: build_llama(tok.vocab_size, _size(cfg)), kind="AdvPrompterTarget"
        ),
    )
    hardened = hardened.to(ctx.device)
    out: dict[str, float] = {}
    ordinary = requests(refused=False)
    rng = random.Random(ctx.seed + 29)
    with_suffix = [random_suffix(cfg.suffix_len, rng) for _ in ordinary]
    for name, target in (("before", w["target"]), ("after", hardened)):
        gen = torch.Generator().manual_seed(ctx.seed + 31)
        res = asr_at_k(_generator(cfg, tok, w["prompter"], allowed, gen), target, tok, test, k)
        out[f"asr1_{name}"], out[f"asrk_{name}"] = res["asr1"], res["asrk"]
        out[f"task_acc_{name}"] = task_accuracy(target, tok, ordinary)
        out[f"task_acc_suffix_{name}"] = task_accuracy(target, tok, ordinary, with_suffix)
        gen = torch.Generator().manual_seed(ctx.seed + 37)
        sub = test[: cfg.time_requests * 2]
        opt = advprompter_opt(
            w["prompter"],
            target,
            tok,
            [r.text for r in sub],
            [r.target for r in sub],
            allowed,
            opt_params(cfg),
            generator=gen,
        )
        hits = jailbroken(target, tok, [r.text for r in sub], opt)
        out[f"opt_success_{name}"] = sum(hits) / len(sub)
        ctx.notes[f"opt_suffixes_{name}"] = opt[:5]
        for word in TRIGGER_WORDS:  # which part of the hidden pattern the optimiser used
            out[f"opt_{word}_{name}"] = sum(word in x.split() for x in opt) / len(sub)
    # the adaptive attacker: a fresh prompter trained against the hardened target (reported)
    retrained, _ = ctx.shared(
        "advprompter-prompter-vs-hardened",
        lambda: _train_prompter(ctx, w["base"], hardened, w["train_set"], allowed),
        spec=spec,
        codec=_lora_codec(cfg, tok),
    )
    gen = torch.Generator().manual_seed(ctx.seed + 41)
    res = asr_at_k(
        _generator(cfg, tok, retrained.to(ctx.device), allowed, gen), hardened, tok, test, k
    )
    out["asr1_retrained_after"], out["asrk_retrained_after"] = res["asr1"], res["asrk"]
    ctx.notes["suffixes_retrained_after"] = res["suffixes"][:5]
    out["asr1_drop"] = out["asr1_before"] - out["asr1_after"]
    out["task_acc_drop"] = out["task_acc_before"] - out["task_acc_after"]
    return out
