"""The models behind the claims: data, the six tokenizers, the four generators, the judge.

Each is trained once per (config, seed) in a ``reproduce`` run (``RunContext.shared``); the
independent trainings run in worker processes (``paperlab.core.parallel.run_jobs``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from paperlab.core.data.images import ImageDataset, load_images
from paperlab.core.parallel import run_jobs
from paperlab.papers.titok.ar import ARGenerator
from paperlab.papers.titok.generation import tokenize, train_generator
from paperlab.papers.titok.maskgit import MaskGIT
from paperlab.papers.titok.tokenizer import GridTokenizer, TiTokTokenizer, train_tokenizer

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


def fit_tokenizer(*, kind: str, kwargs: dict, images: Tensor, train_kw: dict, seed: int) -> dict:
    """One tokenizer, trained from scratch (a job for ``run_jobs``)."""
    torch.manual_seed(seed)
    model = TOKENIZERS[kind](**kwargs)
    start = time.perf_counter()
    history = train_tokenizer(model, images, seed=seed, **train_kw)
    return {"state": model.state_dict(), "history": history, "seconds": time.perf_counter() - start}


def _sequence_cost(kind: str, kwargs: dict) -> int:
    patches = (kwargs["image_size"] // kwargs["patch_size"]) ** 2
    return patches + kwargs.get("num_latent_tokens", 0)


def build_tokenizers(
    cfg: Any, seed: int, train: ImageDataset, progress: bool
) -> dict[str, Trained]:
    specs = tokenizer_specs(cfg, train.channels)
    train_kw = dict(
        steps=cfg.tok_steps,
        batch_size=cfg.tok_batch,
        lr=cfg.tok_lr,
        restart_every=cfg.restart_every,
        progress=progress and cfg.workers <= 1,
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
            ),
        )
        for n in order
    ]
    results = run_jobs(
        jobs,
        workers=cfg.workers,
        threads=cfg.threads,
        progress=progress and cfg.workers > 1,
        desc="titok: tokenizers",
    )
    out = {}
    for name, res in zip(order, results, strict=True):
        kind, kwargs = specs[name]
        model = TOKENIZERS[kind](**kwargs)
        model.load_state_dict(res["state"])
        out[name] = Trained(model.eval(), res["history"], res["seconds"])
    return {name: out[name] for name in specs}


# ---------------------------------------------------------------------------------------------
# Generators: MaskGIT and AR over the TiTok tokens and over the 64-token grid; the FD judge


def fit_generator(
    *, kind: str, kwargs: dict, tokens: Tensor, labels: Tensor, train_kw: dict, seed: int
) -> dict:
    torch.manual_seed(seed)
    model = GENERATORS[kind](**kwargs)
    start = time.perf_counter()
    history = train_generator(model, tokens, labels, seed=seed, **train_kw)
    return {"state": model.state_dict(), "history": history, "seconds": time.perf_counter() - start}


def fit_judge(*, train: ImageDataset, reference: ImageDataset, steps: int, seed: int) -> Any:
    from paperlab.core.image_metric import train_judge

    return train_judge(train, reference, steps=steps, seed=seed)


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
) -> tuple[dict[str, Trained], Any]:
    """{"maskgit_titok", "maskgit_grid", "ar_titok", "ar_grid"} -> Trained, and the judge."""
    sources = {"titok": titok_name(cfg.gen_tokens), "grid": grid_name(cfg, cfg.gen_grid_patch)}
    tokens = {src: tokenize(tokenizers[name].model, train.images) for src, name in sources.items()}
    train_kw = dict(
        steps=cfg.gen_steps,
        batch_size=cfg.gen_batch,
        lr=cfg.gen_lr,
        progress=progress and cfg.workers <= 1,
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
                    ),
                )
            )
    judge_train, _ = train.split(min(len(train) // 2, 2000), seed=seed + 1)
    jobs.insert(
        2, (fit_judge, dict(train=judge_train, reference=test, steps=cfg.judge_steps, seed=seed))
    )
    results = run_jobs(
        jobs,
        workers=cfg.workers,
        threads=cfg.threads,
        progress=progress and cfg.workers > 1,
        desc="titok: generators",
    )
    judge = results.pop(2)
    out = {}
    for name, res in zip(names, results, strict=True):
        kind, src = name.split("_")
        model = GENERATORS[kind](
            **generator_kwargs(cfg, kind, tokens[src].shape[1], train.num_classes)
        )
        model.load_state_dict(res["state"])
        out[name] = Trained(model.eval(), res["history"], res["seconds"])
    return out, judge
