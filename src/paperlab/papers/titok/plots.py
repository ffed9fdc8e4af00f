"""The claims' figures: MSE and probe accuracy vs number of tokens, reconstructions, images/s
and FD bars, sample grids. Saved as artifacts of each result (shown in the HTML report)."""

from __future__ import annotations

from typing import Any

import torch

from paperlab.claims import RunContext
from paperlab.core.data.images import image_grid


def _titok_and_grid(cfg: Any, m: dict[str, float], prefix: str):
    """([K], [value]) for TiTok and ([tokens], [value], [name]) for the grids."""
    ks = sorted(cfg.token_counts)
    titok = [m[f"{prefix}_titok_k{k}"] for k in ks]
    grids = sorted((cfg.image_size // p) ** 2 for p in cfg.grid_patch_sizes)
    return ks, titok, grids, [m[f"{prefix}_grid_{n}"] for n in grids]


def plot_reconstruction(ctx: RunContext, cfg: Any, tokenizers: dict, test: Any, m: dict) -> None:
    ks, titok, grids, grid_mse = _titok_and_grid(cfg, m, "mse")
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(10, 3.8), width_ratios=(1, 1.3))
    a1.plot(ks, titok, "o-", label="TiTok (1D, K latent tokens)")
    a1.plot(grids, grid_mse, "s", ms=8, label="2D grid (patch tokens)")
    for n, v in zip(grids, grid_mse, strict=True):
        a1.annotate(f"grid {n}", (n, v), textcoords="offset points", xytext=(4, 4), fontsize=8)
    a1.set_xscale("log", base=2)
    a1.set_xlabel("tokens per image")
    a1.set_ylabel("held-out MSE")
    a1.set_title("reconstruction vs number of tokens")
    a1.legend(fontsize=8)
    x = test.images[:8]
    rows = [x] + [t.model.reconstruct(x) for t in tokenizers.values()]
    a2.imshow(image_grid(torch.cat(rows), nrow=8), interpolation="nearest")
    size = x.shape[-1] + 1  # image_grid puts one pixel of padding around every image
    a2.set_yticks(
        [1 + size * i + size / 2 for i in range(len(rows))], ["input", *tokenizers], fontsize=7
    )
    a2.set_xticks([])
    a2.set_title("held-out images and reconstructions")
    ctx.save_figure(fig, "reconstruction.png")


def plot_probe(ctx: RunContext, cfg: Any, m: dict) -> None:
    ks, titok, grids, grid_acc = _titok_and_grid(cfg, m, "probe_acc")
    fig, ax = ctx.figure(figsize=(5, 3.6))
    ax.plot(ks, titok, "o-", label="TiTok latents (mean-pooled)")
    ax.plot(grids, grid_acc, "s", ms=8, label="2D grid tokens (mean-pooled)")
    ax.axhline(m["chance"], color="grey", ls=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens per image")
    ax.set_ylabel("linear-probe accuracy (held out)")
    ax.set_title("semantics of the latents vs number of tokens")
    ax.legend(fontsize=8)
    ctx.save_figure(fig, "linear_probe.png")


def plot_generation(ctx: RunContext, cfg: Any, m: dict, samples: dict, num_classes: int) -> None:
    names = list(samples)
    colours = ["C0" if n.endswith("titok") else "C1" for n in names]
    labels = [
        n.replace("_titok", f"\nTiTok {cfg.gen_tokens} tok").replace(
            "_grid", f"\ngrid {(cfg.image_size // cfg.gen_grid_patch) ** 2} tok"
        )
        for n in names
    ]
    fig, (a1, a2) = ctx.figure(1, 2, figsize=(10, 3.6))
    a1.bar(labels, [m[f"images_per_s_{n}"] for n in names], color=colours)
    a1.set_yscale("log")
    a1.set_ylabel(f"images / s (batch {cfg.timing_batch}, CPU)")
    a1.set_title(f"speed: MaskGIT {m['speedup_maskgit']:.1f}x, AR {m['speedup_ar']:.1f}x")
    a2.bar(labels, [m[f"fd_{n}"] for n in names], color=colours)
    a2.axhline(m["fd_real"], color="grey", ls=":", label="real images")
    a2.set_ylabel("FD-shapes (lower is better)")
    a2.set_title("sample quality")
    a2.legend(fontsize=8)
    for ax in (a1, a2):
        ax.tick_params(axis="x", labelsize=8)
    ctx.save_figure(fig, "generation.png")

    per_row = min(num_classes, 12)
    rows = [s[:per_row] for s in samples.values()]  # one sample per class, in class order
    fig, ax = ctx.figure(figsize=(per_row * 0.6 + 1.5, len(rows) * 0.65 + 0.6))
    ax.imshow(image_grid(torch.cat(rows), nrow=per_row), interpolation="nearest")
    size = samples[names[0]].shape[-1] + 1
    ax.set_yticks([size / 2 + size * i for i in range(len(rows))], names, fontsize=8)
    ax.set_xticks([])
    ax.set_title("class-conditional samples (one per class)")
    ctx.save_figure(fig, "samples.png")
