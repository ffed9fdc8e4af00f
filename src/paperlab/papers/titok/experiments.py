"""The models behind the claims (data, the six tokenizers, the four generators, the judge)
and the claims' runs.

Each is trained once per (config, seed) in a ``reproduce`` run (``RunContext.shared``); the
independent trainings run in worker processes (``paperlab.core.parallel.run_jobs``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from paperlab.claims import RunContext
from paperlab.core.artifacts import ModuleCodec
from paperlab.core.data.images import ImageDataset, load_images
from paperlab.core.device import torch_threads
from paperlab.core.parallel import run_jobs
from paperlab.core.stats import spearman
from paperlab.core.timing import time_interleaved
from paperlab.papers.titok.ar import ARGenerator
from paperlab.papers.titok.generation import tokenize, train_generator
from paperlab.papers.titok.maskgit import MaskGIT
from paperlab.papers.titok.plots import plot_generation, plot_probe, plot_reconstruction
from paperlab.papers.titok.probe import linear_probe, pooled_latents
from paperlab.papers.titok.tokenizer import (
    GridTokenizer,
    TiTokTokenizer,
    reconstruction_mse,
    train_tokenizer,
)

TOKENIZERS = {"titok": TiTokTokenizer, "grid": GridTokenizer}
GENERATORS = {"maskgit": MaskGIT, "ar": ARGenerator}


@dataclass
class Trained:
    model: Any
    history: dict[str, list[float]]
    seconds: float


def load_data(cfg: Any, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """(train, test) images of ``cfg.dataset`` at ``cfg.image_size`` px."""
    data = load_images(cfg.dataset, n=cfg.n_train + cfg.n_test, size=cfg.image_size, seed=seed)
    return data.split(cfg.n_test, seed=seed)


# ---------------------------------------------------------------------------------------------
# Tokenizers: TiTok for every K, the 2D grid with the same and with more tokens


def titok_name(k: int) -> str:
    return f"titok_k{k}"


def grid_name(cfg: Any, patch_size: int) -> str:
    return f"grid_{(cfg.image_size // patch_size) ** 2}"


def tokenizer_specs(cfg: Any, channels: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (kind, constructor kwargs); every model has the same width, depths, codebook."""
    common = dict(
        image_size=cfg.image_size,
        channels=channels,
        width=cfg.width,
        enc_depth=cfg.enc_depth,
        dec_depth=cfg.dec_depth,
        n_heads=cfg.n_heads,
        codebook_size=cfg.codebook_size,
        code_dim=cfg.code_dim,
    )
    specs = {
        titok_name(k): (
            "titok",
            {**common, "patch_size": cfg.titok_patch_size, "num_latent_tokens": k},
        )
        for k in cfg.token_counts
    }
    for p in cfg.grid_patch_sizes:
        specs[grid_name(cfg, p)] = ("grid", {**common, "patch_size": p})
    return specs


def fit_tokenizer(
    *, kind: str, kwargs: dict, images: Tensor, train_kw: dict, seed: int, device: str = "cpu"
) -> dict:
    """One tokenizer, trained from scratch on ``device`` (a job for ``run_jobs``)."""
    torch.manual_seed(seed)
    model = TOKENIZERS[kind](**kwargs)
    history = train_tokenizer(model, images, seed=seed, device=device, **train_kw)
    return {"state": model.state_dict(), "history": history, "seconds": sum(history["seconds"])}


def _sequence_cost(kind: str, kwargs: dict) -> int:
    patches = (kwargs["image_size"] // kwargs["patch_size"]) ** 2
    return patches + kwargs.get("num_latent_tokens", 0)


def job_workers(cfg: Any, device: str) -> int:
    """Worker processes for the trainings: ``cfg.workers`` on the CPU; on an accelerator one
    (the trainings run in this process, one after the other, on ``device``: forked workers
    cannot reuse a CUDA context, and models this small do not share a GPU usefully)."""
    return cfg.workers if device == "cpu" else 1


def build_tokenizers(
    cfg: Any,
    seed: int,
    train: ImageDataset,
    progress: bool,
    names: list[str] | None = None,
    device: str = "cpu",
) -> dict[str, Trained]:
    """The tokenizers of :func:`tokenizer_specs` (only ``names`` if given), trained on
    ``device`` in worker processes (CPU) or in this process (accelerators), longest first."""
    workers = job_workers(cfg, device)
    specs = tokenizer_specs(cfg, train.channels)
    if names is not None:
        specs = {n: specs[n] for n in names}
    train_kw = dict(
        steps=cfg.tok_steps,
        batch_size=cfg.tok_batch,
        lr=cfg.tok_lr,
        restart_every=cfg.restart_every,
        progress=progress and workers <= 1,
    )
    order = sorted(specs, key=lambda n: -_sequence_cost(*specs[n]))  # longest jobs first
    jobs = [
        (
            fit_tokenizer,
            dict(
                kind=specs[n][0],
                kwargs=specs[n][1],
                images=train.images,
                train_kw={**train_kw, "desc": n},
                seed=seed,
                device=device,
            ),
        )
        for n in order
    ]
    results = run_jobs(
        jobs,
        workers=workers,
        threads=cfg.threads,
        progress=progress and workers > 1,
        desc="titok: tokenizers",
    )
    out = {}
    for name, res in zip(order, results, strict=True):
        kind, kwargs = specs[name]
        model = TOKENIZERS[kind](**kwargs).to(device)
        model.load_state_dict(res["state"])
        out[name] = Trained(model.eval(), res["history"], res["seconds"])
    return {name: out[name] for name in specs}


# ---------------------------------------------------------------------------------------------
# Generators: MaskGIT and AR over the TiTok tokens and over the 64-token grid; the FD judge


def fit_generator(
    *,
    kind: str,
    kwargs: dict,
    tokens: Tensor,
    labels: Tensor,
    train_kw: dict,
    seed: int,
    device: str = "cpu",
) -> dict:
    """One generator, trained from scratch on ``device`` (a job for ``run_jobs``)."""
    torch.manual_seed(seed)
    model = GENERATORS[kind](**kwargs)
    history = train_generator(model, tokens, labels, seed=seed, device=device, **train_kw)
    return {"state": model.state_dict(), "history": history, "seconds": sum(history["seconds"])}


def fit_judge(
    *, train: ImageDataset, reference: ImageDataset, steps: int, seed: int, device: str = "cpu"
) -> Any:
    """The FD judge (``core.image_metric``), trained on ``device``."""
    from paperlab.core.image_metric import train_judge

    return train_judge(train, reference, steps=steps, seed=seed, device=device)


def generator_kwargs(cfg: Any, kind: str, seq_len: int, num_classes: int) -> dict[str, Any]:
    common = dict(
        codebook_size=cfg.codebook_size,
        seq_len=seq_len,
        num_classes=num_classes,
        dim=cfg.gen_dim,
        n_heads=cfg.n_heads,
    )
    depth_key = "depth" if kind == "maskgit" else "n_layers"
    return {**common, depth_key: cfg.gen_depth}


def build_generators(
    cfg: Any,
    seed: int,
    train: ImageDataset,
    test: ImageDataset,
    tokenizers: dict[str, Trained],
    progress: bool,
    device: str = "cpu",
) -> tuple[dict[str, Trained], Any]:
    """{"maskgit_titok", "maskgit_grid", "ar_titok", "ar_grid"} -> Trained, and the judge,
    trained on ``device``."""
    workers = job_workers(cfg, device)
    sources = {"titok": titok_name(cfg.gen_tokens), "grid": grid_name(cfg, cfg.gen_grid_patch)}
    tokens = {src: tokenize(tokenizers[name].model, train.images) for src, name in sources.items()}
    train_kw = dict(
        steps=cfg.gen_steps,
        batch_size=cfg.gen_batch,
        lr=cfg.gen_lr,
        progress=progress and workers <= 1,
    )
    names, jobs = [], []
    for src in ("grid", "titok"):  # the long (64-token) jobs first
        for kind in ("maskgit", "ar"):
            kwargs = generator_kwargs(cfg, kind, tokens[src].shape[1], train.num_classes)
            names.append(f"{kind}_{src}")
            jobs.append(
                (
                    fit_generator,
                    dict(
                        kind=kind,
                        kwargs=kwargs,
                        tokens=tokens[src],
                        labels=train.labels,
                        train_kw={**train_kw, "desc": names[-1]},
                        seed=seed,
                        device=device,
                    ),
                )
            )
    judge_train, _ = train.split(min(len(train) // 2, 2000), seed=seed + 1)
    judge_kw = dict(train=judge_train, reference=test, steps=cfg.judge_steps, seed=seed)
    jobs.insert(2, (fit_judge, {**judge_kw, "device": device}))
    results = run_jobs(
        jobs,
        workers=workers,
        threads=cfg.threads,
        progress=progress and workers > 1,
        desc="titok: generators",
    )
    judge = results.pop(2)
    out = {}
    for name, res in zip(names, results, strict=True):
        kind, src = name.split("_")
        model = GENERATORS[kind](
            **generator_kwargs(cfg, kind, tokens[src].shape[1], train.num_classes)
        ).to(device)
        model.load_state_dict(res["state"])
        out[name] = Trained(model.eval(), res["history"], res["seconds"])
    return out, judge


# ---------------------------------------------------------------------------------------------
# The claims' runs


def shared_data(ctx: RunContext) -> tuple[ImageDataset, ImageDataset]:
    """The train/test split, once per paper run."""
    return ctx.shared("data", lambda: load_data(ctx.config, ctx.seed))


def shared_tokenizers(ctx: RunContext) -> dict[str, Trained]:
    """The six tokenizers, trained once per spec (this run's cache, and the disk cache)."""
    cfg = ctx.config
    train, _ = shared_data(ctx)
    specs = tokenizer_specs(cfg, train.channels)
    keys = {n: tokenizer_key(cfg, *specs[n]) for n in specs}
    done = {
        n: cached_model(ctx, "titok-tokenizer", keys[n], TOKENIZERS[k], kw)
        for n, (k, kw) in specs.items()
    }
    todo = [n for n, t in done.items() if t is None]
    if todo:
        fresh = build_tokenizers(cfg, ctx.seed, train, ctx.progress, todo, ctx.device)
        for n in todo:
            kind, kwargs = specs[n]
            done[n] = cached_model(
                ctx, "titok-tokenizer", keys[n], TOKENIZERS[kind], kwargs, fresh[n]
            )
    return done  # type: ignore[return-value]


def shared_generators(
    ctx: RunContext, tokenizers: dict[str, Trained]
) -> tuple[dict[str, Trained], Any]:
    """The four generators (trained once per spec, disk-cached) and the FD judge (trained
    once per run; with the generators when they are trained)."""
    cfg = ctx.config
    train, test = shared_data(ctx)
    specs = tokenizer_specs(cfg, train.channels)
    sources = {"titok": titok_name(cfg.gen_tokens), "grid": grid_name(cfg, cfg.gen_grid_patch)}
    seq_len = {src: tokenizers[n].model.num_tokens for src, n in sources.items()}
    entries = {}
    for kind in ("maskgit", "ar"):
        for src, tok in sources.items():
            kwargs = generator_kwargs(cfg, kind, seq_len[src], train.num_classes)
            key = dict(
                kind=kind,
                kwargs=kwargs,
                steps=cfg.gen_steps,
                batch_size=cfg.gen_batch,
                lr=cfg.gen_lr,
                tokenizer=tokenizer_key(cfg, *specs[tok]),
            )
            entries[f"{kind}_{src}"] = (key, GENERATORS[kind], kwargs)
    done = {n: cached_model(ctx, "titok-generator", *e) for n, e in entries.items()}
    if any(t is None for t in done.values()):
        fresh, judge = build_generators(
            cfg, ctx.seed, train, test, tokenizers, ctx.progress, ctx.device
        )
        done = {n: cached_model(ctx, "titok-generator", *e, fresh[n]) for n, e in entries.items()}
        ctx.shared("titok-judge", lambda: judge)
    else:
        judge_train, _ = train.split(min(len(train) // 2, 2000), seed=ctx.seed + 1)
        kw = dict(
            train=judge_train,
            reference=test,
            steps=cfg.judge_steps,
            seed=ctx.seed,
            device=ctx.device,
        )
        with torch_threads(cfg.threads):  # as in the worker processes: the same judge
            judge = ctx.shared("titok-judge", lambda: fit_judge(**kw))
    return done, judge  # type: ignore[return-value]


def tokenizer_key(cfg: Any, kind: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What one tokenizer's training depends on (the run's seed is added by ``ctx.shared``)."""
    data = {k: getattr(cfg, k) for k in ("dataset", "n_train", "n_test", "image_size")}
    train = {k: getattr(cfg, k) for k in ("tok_steps", "tok_batch", "tok_lr", "restart_every")}
    return {"kind": kind, "kwargs": kwargs, "data": data, "threads": cfg.threads} | train


class _NotCached(Exception):
    pass


def _not_cached() -> Any:
    raise _NotCached


def cached_model(
    ctx: RunContext,
    name: str,
    key: dict[str, Any],
    cls: type,
    kwargs: dict[str, Any],
    trained: Trained | None = None,
) -> Trained | None:
    """The trained model of ``key`` from this run's memory or the disk cache (``None`` if
    neither has it), on ``ctx.device``; with ``trained``: store that one."""
    if trained is None:
        build = _not_cached
    else:
        info = {"history": trained.history, "seconds": trained.seconds}
        build = lambda: (trained.model, info)  # noqa: E731
    codec = ModuleCodec(build=lambda: cls(**kwargs), kind=name)
    try:
        model, info = ctx.shared(name, build, spec=key, codec=codec)
    except _NotCached:
        return None
    return Trained(model.to(ctx.device).eval(), info["history"], info["seconds"])


# ---------------------------------------------------------------------------------------------
# (1) reconstruction vs number of tokens


def run_reconstruction(ctx: RunContext) -> dict[str, float]:
    cfg: Any = ctx.config
    _, test = shared_data(ctx)
    tokenizers = shared_tokenizers(ctx)
    m: dict[str, float] = {}
    with torch_threads(cfg.threads):
        for name, t in tokenizers.items():
            m[f"mse_{name}"] = reconstruction_mse(t.model, test.images)
            ids = t.model.encode(test.images.to(ctx.device))
            m[f"usage_{name}"] = ids.unique().numel() / cfg.codebook_size
            m[f"train_seconds_{name}"] = t.seconds
    k_min, k_max = min(cfg.token_counts), max(cfg.token_counts)
    same = grid_name(cfg, cfg.grid_patch_sizes[0])
    m["mse_ratio_kmin_over_kmax"] = m[f"mse_{titok_name(k_min)}"] / m[f"mse_{titok_name(k_max)}"]
    m["mse_ratio_titok_over_grid"] = m[f"mse_{titok_name(k_max)}"] / m[f"mse_{same}"]
    mses = [m[f"mse_{titok_name(k)}"] for k in sorted(cfg.token_counts)]
    m["monotone_steps"] = float(sum(b <= a for a, b in zip(mses, mses[1:], strict=False)))
    ctx.notes["restart_usage"] = {n: t.history.get("usage", []) for n, t in tokenizers.items()}
    plot_reconstruction(ctx, cfg, tokenizers, test, m)
    return m


# ---------------------------------------------------------------------------------------------
# (2) linear probe on the latents


def run_linear_probe(ctx: RunContext) -> dict[str, float]:
    cfg: Any = ctx.config
    train, test = shared_data(ctx)
    tokenizers = shared_tokenizers(ctx)
    x_train, y_train = train.images[: cfg.probe_train], train.labels[: cfg.probe_train]
    m: dict[str, float] = {}
    with torch_threads(cfg.threads):
        for name, t in tokenizers.items():
            f_train = pooled_latents(t.model, x_train)
            f_test = pooled_latents(t.model, test.images)
            # the probe is fitted on the run's device too
            f_train, f_test = f_train.to(ctx.device), f_test.to(ctx.device)
            m[f"probe_acc_{name}"] = linear_probe(f_train, y_train, f_test, test.labels)
    ks = sorted(cfg.token_counts)
    accs = [m[f"probe_acc_{titok_name(k)}"] for k in ks]
    m["probe_gain_kmin_minus_kmax"] = accs[0] - accs[-1]
    m["probe_rank_corr"] = spearman(ks, accs)
    m["chance"] = 1.0 / train.num_classes
    plot_probe(ctx, cfg, m)
    return m


# ---------------------------------------------------------------------------------------------
# (3) generation speed at comparable FD


def sampler(cfg: Any, name: str, gen, tok):
    kind = name.split("_")[0]
    kw = {"cfg_scale": cfg.cfg_scale}
    if kind == "maskgit":
        kw |= dict(
            num_steps=cfg.num_steps,
            schedule=cfg.schedule,
            randomness_temperature=cfg.randomness_temperature,
        )

    def sample(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
        # the draws on the CPU (a seeded CPU generator), the models on their device; the
        # images come back to the CPU (on an accelerator: a sync, so the timing is honest)
        g = torch.Generator().manual_seed(seed)
        return tok.decode_indices(gen.generate(labels, generator=g, **kw)).cpu()

    return sample


def run_generation(ctx: RunContext) -> dict[str, float]:
    cfg: Any = ctx.config
    train, test = shared_data(ctx)
    tokenizers = shared_tokenizers(ctx)
    generators, judge = shared_generators(ctx, tokenizers)
    source = {
        "titok": tokenizers[titok_name(cfg.gen_tokens)].model,
        "grid": tokenizers[grid_name(cfg, cfg.gen_grid_patch)].model,
    }
    order = ("maskgit_titok", "maskgit_grid", "ar_titok", "ar_grid")
    samplers = {n: sampler(cfg, n, generators[n].model, source[n.split("_")[1]]) for n in order}
    m: dict[str, float] = {}
    with torch_threads(cfg.threads):
        labels = torch.arange(cfg.timing_batch) % train.num_classes
        timings = time_interleaved(samplers, [labels], cfg.timing_reps)
        samples = {}
        for name, sample in samplers.items():
            m[f"images_per_s_{name}"] = cfg.timing_batch / timings.median(name)
            samples[name] = draw_samples(sample, cfg, train.num_classes)
            y = torch.arange(cfg.n_samples) % train.num_classes
            score = judge.score(samples[name], y)
            m[f"fd_{name}"], m[f"class_acc_{name}"] = score["fd"], score["class_acc"]
            m[f"train_seconds_{name}"] = generators[name].seconds
        for src, tok in source.items():  # the tokenizers' own ceiling: FD of reconstructions
            m[f"fd_recon_{src}"] = judge.fd(tok.reconstruct(test.images[: cfg.n_samples]))
        m["fd_real"] = judge.fd(train.images[-cfg.n_samples :])  # real images never judged on
    for kind in ("maskgit", "ar"):
        m[f"speedup_{kind}"] = m[f"images_per_s_{kind}_titok"] / m[f"images_per_s_{kind}_grid"]
        m[f"fd_ratio_{kind}"] = m[f"fd_{kind}_titok"] / max(m[f"fd_{kind}_grid"], 1e-9)
    m["judge_test_accuracy"] = judge.test_accuracy
    plot_generation(ctx, cfg, m, samples, train.num_classes)
    return m


def draw_samples(sample, cfg: Any, num_classes: int) -> torch.Tensor:
    """cfg.n_samples class-balanced samples, in timing-sized batches (seeded per batch)."""
    y = torch.arange(cfg.n_samples) % num_classes
    return torch.cat([sample(b, seed=i) for i, b in enumerate(y.split(cfg.timing_batch))])
