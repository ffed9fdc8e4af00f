"""LlamaGen's experiments: the shared pieces (data, the two tokenizers, the generator, the FD
judge) and the claims' runs.

The tokenizers and the generator are trained once per spec (the config fields their training
reads) through the run's cache, with :class:`~paperlab.core.artifacts.ModuleCodec`: a second
``paperlab reproduce llamagen`` with the same config reads them from the disk cache. The judge
is trained once per run (memory only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import ModuleCodec
from paperlab.core.data.images import image_grid, load_images
from paperlab.core.device import torch_threads
from paperlab.core.image_metric import train_judge
from paperlab.core.timing import time_interleaved
from paperlab.core.vq import codebook_usage
from paperlab.papers.llamagen.generator import LlamaGen, LlamaGenConfig
from paperlab.papers.llamagen.sample import generate_images, sample
from paperlab.papers.llamagen.tokenizer import VQTokenizer, VQTokenizerConfig
from paperlab.papers.llamagen.training import encode_images, train_generator, train_tokenizer

# channel multipliers per downsampling factor (the official VQ-8 / VQ-16 for 8 and 16)
CHANNEL_MULT = {2: (1, 2), 4: (1, 2, 2), 8: (1, 2, 2, 4), 16: (1, 1, 2, 2, 4)}
DIGITS_IMAGES = 1797  # scikit-learn's digits: the whole set is loaded


@contextlib.contextmanager
def config_threads(cfg: Any) -> Iterator[None]:
    if cfg.threads:
        with torch_threads(cfg.threads):
            yield
    else:
        yield


# ---------------------------------------------------------------------------------------------
# Shared pieces: data, tokenizers, generator, judge (built once per reproduce run)


def shared_data(ctx: RunContext):
    cfg: Any = ctx.config

    def build():
        data = load_images(cfg.dataset, n=cfg.n_images, size=cfg.image_size, seed=ctx.seed)
        return data.split(cfg.n_test, seed=ctx.seed)  # (train, test)

    return ctx.shared("llamagen-data", build)


def tokenizer_config(cfg: Any, channels: int, *, l2: bool) -> VQTokenizerConfig:
    """The l2-normalised dim-8 tokenizer (l2=True) or the plain dim-64 baseline (l2=False)."""
    return VQTokenizerConfig(
        in_channels=channels,
        channels=cfg.tok_channels,
        channel_mult=CHANNEL_MULT[cfg.downsample],
        z_channels=2 * cfg.tok_channels,
        codebook_size=cfg.codebook_size,
        codebook_dim=cfg.codebook_dim if l2 else cfg.plain_dim,
        l2_norm=l2,
        norm_groups=min(8, cfg.tok_channels),
    )


def shared_tokenizer(ctx: RunContext, *, l2: bool):
    cfg: Any = ctx.config
    train, _ = shared_data(ctx)

    def build():
        return train_tokenizer(
            train.images,
            config=tokenizer_config(cfg, train.channels, l2=l2),
            steps=cfg.tok_steps,
            batch_size=cfg.tok_batch,
            lr=cfg.tok_lr,
            seed=ctx.seed,
            device=ctx.device,
            progress=ctx.progress,
            desc=f"tokenizer ({'l2, dim 8' if l2 else 'plain, dim 64'})",
        )

    config = tokenizer_config(cfg, train.channels, l2=l2)
    codec = ModuleCodec(build=lambda: VQTokenizer(config=config), kind="llamagen-tokenizer")
    return ctx.shared("llamagen-tokenizer", build, spec=tokenizer_key(cfg, l2=l2), codec=codec)


def tokenizer_key(cfg: Any, *, l2: bool) -> dict[str, Any]:
    """What a tokenizer's training reads (the run's seed and device are added by ``ctx.shared``)."""
    fields = ("dataset", "n_images", "n_test", "image_size", "downsample", "tok_channels")
    fields += ("codebook_size", "codebook_dim" if l2 else "plain_dim")
    fields += ("tok_steps", "tok_batch", "tok_lr", "threads")
    return {"l2": l2} | {k: getattr(cfg, k) for k in fields}


def shared_generator(ctx: RunContext):
    cfg: Any = ctx.config
    train, _ = shared_data(ctx)
    tokenizer, _ = shared_tokenizer(ctx, l2=True)

    def gen_config() -> LlamaGenConfig:
        return LlamaGenConfig(
            codebook_size=cfg.codebook_size,
            num_classes=train.num_classes,
            grid_size=cfg.image_size // cfg.downsample,
            dim=cfg.gen_dim,
            n_layers=cfg.gen_layers,
            n_heads=cfg.gen_heads,
            class_dropout=cfg.class_dropout,
        )

    def build():
        return train_generator(
            tokenizer,
            train.images,
            train.labels,
            config=gen_config(),
            steps=cfg.gen_steps,
            batch_size=cfg.gen_batch,
            lr=cfg.gen_lr,
            seed=ctx.seed,
            device=ctx.device,
            progress=ctx.progress,
        )

    gen_fields = ("gen_dim", "gen_layers", "gen_heads", "class_dropout")
    gen_fields += ("gen_steps", "gen_batch", "gen_lr")
    spec = {"tokenizer": tokenizer_key(cfg, l2=True)} | {k: getattr(cfg, k) for k in gen_fields}
    codec = ModuleCodec(build=lambda: LlamaGen(config=gen_config()), kind="llamagen-generator")
    return ctx.shared("llamagen-generator", build, spec=spec, codec=codec)


def shared_judge(ctx: RunContext):
    cfg: Any = ctx.config
    train, test = shared_data(ctx)
    return ctx.shared(
        "llamagen-judge",
        lambda: train_judge(
            train,
            test,
            steps=cfg.judge_steps,
            seed=ctx.seed,
            device=ctx.device,
            progress=ctx.progress,
        ),
    )


def fd_or_nan(judge, images: torch.Tensor) -> float:
    """FD, or NaN when the covariances are too ill-conditioned for sqrtm (tiny sample sizes)."""
    try:
        return judge.fd(images)
    except ValueError:
        return float("nan")


def scale_key(scale: float) -> str:
    return f"{scale:g}".replace(".", "_")  # 1.5 -> "1_5" (measured keys must be format-able)


# ---------------------------------------------------------------------------------------------
# (1) tokenizer: l2-normalised dim-8 codes vs plain dim-64 VQ


def run_tokenizer(ctx: RunContext) -> dict[str, float]:
    cfg: Any = ctx.config
    with config_threads(cfg):
        _, test = shared_data(ctx)
        measured: dict[str, float] = {}
        recons, counts = {}, {}
        for name, l2 in (("l2", True), ("plain", False)):
            tok, history = shared_tokenizer(ctx, l2=l2)
            indices = encode_images(tok, test.images)
            with torch.no_grad():
                recon = torch.cat(
                    [
                        tok.decode_indices(indices[i : i + 256].to(ctx.device)).cpu()
                        for i in range(0, len(indices), 256)
                    ]
                )
            measured[f"usage_{name}"] = codebook_usage(indices, cfg.codebook_size)
            measured[f"mse_{name}"] = float(((recon - test.images) ** 2).mean())
            measured[f"seconds_{name}"] = history["seconds"][0]
            recons[name] = recon
            counts[name] = torch.bincount(indices.flatten(), minlength=cfg.codebook_size)
    measured["usage_gain"] = measured["usage_l2"] - measured["usage_plain"]
    measured["mse_ratio"] = measured["mse_l2"] / max(measured["mse_plain"], 1e-12)
    measured["codebook_size"] = cfg.codebook_size
    measured["tokens_per_image"] = (cfg.image_size // cfg.downsample) ** 2
    plot_tokenizer(ctx, test.images, recons, counts)
    return measured


def plot_tokenizer(ctx: RunContext, images, recons, counts) -> None:
    n = min(12, images.shape[0])
    rows = torch.cat([images[:n], recons["l2"][:n], recons["plain"][:n]])
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    a1.imshow(image_grid(rows, nrow=n), interpolation="nearest")
    a1.set_yticks([8 + 17 * i for i in range(3)], ["real", "l2, dim 8", "plain, dim 64"])
    a1.set_xticks([])
    a1.set_title("held-out images and their reconstructions")
    for name, label in (("l2", "l2-norm, dim 8"), ("plain", "plain, dim 64")):
        c = counts[name].sort(descending=True).values.float()
        a2.plot(np.arange(1, len(c) + 1), (c / c.sum()).numpy(), label=label)
    a2.set_yscale("log")
    a2.set_xlabel("code rank")
    a2.set_ylabel("share of held-out tokens")
    a2.set_title("code frequencies")
    a2.legend()
    ctx.save_figure(fig, "tokenizer.png")


# ---------------------------------------------------------------------------------------------
# (2) classifier-free guidance sweep


def class_labels(num_classes: int, per_class: int) -> torch.Tensor:
    return torch.arange(num_classes).repeat_interleave(per_class)  # class-major: one row each


def run_cfg(ctx: RunContext) -> dict[str, float]:
    cfg: Any = ctx.config
    with config_threads(cfg):
        train, _ = shared_data(ctx)
        tokenizer, _ = shared_tokenizer(ctx, l2=True)
        generator, history = shared_generator(ctx)
        judge = shared_judge(ctx)
        labels = class_labels(train.num_classes, cfg.samples_per_class)
        n = len(labels)
        measured: dict[str, float] = {"judge_test_accuracy": judge.test_accuracy}
        ctx.notes["fd_name"] = judge.name  # "FD-shapes": a Frechet distance, not FID
        real = train.images[:n]
        recon = tokenizer.decode_indices(encode_images(tokenizer, real).to(ctx.device)).cpu()
        measured["fd_real"] = fd_or_nan(judge, real)  # the floor at this sample size
        measured["fd_recon"] = fd_or_nan(judge, recon)  # the tokenizer's floor
        measured["acc_recon"] = judge.class_accuracy(recon, train.labels[:n])
        samples = {}
        for scale in cfg.cfg_scales:
            images = generate_images(
                generator,
                tokenizer,
                labels,
                cfg_scale=scale,
                temperature=cfg.temperature,
                top_k=cfg.top_k,
                top_p=cfg.top_p,
                seed=ctx.seed,
            ).cpu()
            measured[f"acc_cfg{scale_key(scale)}"] = judge.class_accuracy(images, labels)
            measured[f"fd_cfg{scale_key(scale)}"] = fd_or_nan(judge, images)
            samples[scale] = images
    accs = [measured[f"acc_cfg{scale_key(s)}"] for s in cfg.cfg_scales]
    fds = [measured[f"fd_cfg{scale_key(s)}"] for s in cfg.cfg_scales]
    measured |= {
        "acc_no_cfg": accs[0],
        "acc_max_scale": accs[-1],
        "max_scale": cfg.cfg_scales[-1],
        "acc_gain": accs[-1] - accs[0],
        "acc_best": max(accs),  # reported, not judged
        "acc_best_scale": cfg.cfg_scales[int(np.argmax(accs))],
        "fd_no_cfg": fds[0],
        **fd_minimum(fds, cfg.cfg_scales),
        "samples_per_scale": n,
        "generator_params": generator.num_params(),
        "generator_final_loss": history["loss"][-1],
        "generator_seconds": history["seconds"][0],
    }
    plot_cfg(ctx, cfg, accs, fds, measured)
    plot_samples(ctx, cfg, samples, train.num_classes)
    return measured


def fd_minimum(fds: list[float], scales) -> dict[str, float]:
    if np.isnan(fds).all():
        return {"fd_best": float("nan"), "fd_argmin_scale": float("nan")}
    best = int(np.nanargmin(fds))
    return {"fd_best": fds[best], "fd_argmin_scale": scales[best]}


def plot_cfg(ctx: RunContext, cfg, accs, fds, m) -> None:
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(9, 3.2))
    scales = list(cfg.cfg_scales)
    a1.plot(scales, accs, "o-")
    a1.axhline(m["acc_recon"], color="k", ls="--", lw=1, label="tokenizer reconstructions")
    a1.set_xlabel("CFG scale")
    a1.set_ylabel("class accuracy of samples")
    a1.legend(fontsize=8)
    a2.plot(scales, fds, "o-", color="C1")
    a2.axhline(m["fd_recon"], color="k", ls="--", lw=1, label="tokenizer reconstructions")
    a2.axhline(m["fd_real"], color="0.5", ls=":", lw=1, label="real images (same n)")
    a2.set_xlabel("CFG scale")
    a2.set_ylabel(f"{ctx.notes['fd_name']} (lower is better)")
    a2.legend(fontsize=8)
    ctx.save_figure(fig, "cfg_curves.png")


def plot_samples(ctx: RunContext, cfg, samples, num_classes: int) -> None:
    cols = min(cfg.samples_per_class, 8)
    fig, axes = ctx.figure(1, len(samples), figsize=(2.0 * len(samples), 2.6), squeeze=False)
    for ax, (scale, images) in zip(axes[0], samples.items(), strict=True):
        per_class = images.view(num_classes, cfg.samples_per_class, *images.shape[1:])
        ax.imshow(image_grid(per_class[:, :cols].flatten(0, 1), nrow=cols), interpolation="nearest")
        ax.set_title(f"CFG {scale:g}", fontsize=9)
        ax.axis("off")
    ctx.save_figure(fig, "cfg_samples.png", dpi=130)


# ---------------------------------------------------------------------------------------------
# (3) KV cache + batched CFG vs recompute


def run_kv_cache(ctx: RunContext) -> dict[str, float]:
    cfg: Any = ctx.config
    with config_threads(cfg):
        train, _ = shared_data(ctx)
        generator, _ = shared_generator(ctx)
        labels = torch.arange(cfg.kv_images) % train.num_classes
        common = dict(
            cfg_scale=cfg.kv_cfg_scale,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            seed=ctx.seed,
        )
        methods = {
            "cache": lambda y: sample(generator, y, use_cache=True, **common),
            "cache_separate_cfg": lambda y: sample(generator, y, batch_cfg=False, **common),
            "recompute": lambda y: sample(generator, y, use_cache=False, **common),
        }
        timings = time_interleaved(methods, [labels], reps=cfg.kv_reps, progress=ctx.progress)
    out = {name: timings.outputs[name][0] for name in methods}
    n = cfg.kv_images
    measured = {f"images_per_s_{k}": n / timings.median(k) for k in methods}
    measured |= {
        "speedup": timings.ratio("recompute", "cache"),
        "batching_speedup": timings.ratio("cache_separate_cfg", "cache"),
        "tokens_identical": float(torch.equal(out["cache"], out["recompute"])),
        "token_agreement": float((out["cache"] == out["recompute"]).float().mean()),
        "separate_cfg_identical": float(torch.equal(out["cache"], out["cache_separate_cfg"])),
        "images": n,
        "sequence_length": generator.config.seq_len,  # class token + image tokens
        "image_tokens": generator.config.num_image_tokens,
        "cfg_scale": cfg.kv_cfg_scale,
        "threads": torch.get_num_threads() if not cfg.threads else cfg.threads,
    }
    plot_kv(ctx, measured, list(methods))
    return measured


def plot_kv(ctx: RunContext, m, names) -> None:
    fig, ax = ctx.figure(figsize=(5.5, 3.0))
    labels = {
        "cache": "KV cache,\nbatched CFG",
        "cache_separate_cfg": "KV cache,\nseparate CFG",
        "recompute": "recompute,\nbatched CFG",
    }
    ax.bar(range(len(names)), [m[f"images_per_s_{k}"] for k in names], color=["C0", "C2", "C3"])
    ax.set_xticks(range(len(names)), [labels[k] for k in names], fontsize=8)
    ax.set_ylabel("images / s")
    ax.set_title(
        f"{int(m['images'])} images, {int(m['image_tokens'])} tokens each, CFG {m['cfg_scale']:g}",
        fontsize=9,
    )
    ctx.save_figure(fig, "kv_cache.png")
