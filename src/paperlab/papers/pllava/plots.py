"""The claims' figures (matplotlib's Agg canvas through ``ctx.figure``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from paperlab.claims import RunContext


def curves(ctx: RunContext, runs: dict[str, list[dict[str, Any]]]) -> None:
    """Accuracy, max/median token norm and caption length against training samples seen
    (mean over seeds): the miniature's data-growth curves."""
    fig, axes = ctx.figure(1, 3, figsize=(12, 3.4))
    panels = (
        ("eval_acc", "video QA accuracy"),
        ("eval_norm_max_over_median", "max / median visual-token norm"),
        ("eval_caption_len", "caption length (bytes)"),
    )
    for ax, (key, title) in zip(axes, panels, strict=True):
        for name, cs in runs.items():
            x = cs[0]["samples_seen"]
            y = np.mean([c[key] for c in cs], axis=0)
            ax.plot(x, y, marker="o", label=name)
        ax.set_title(title)
        ax.set_xlabel("training samples seen")
        ax.legend()
    ctx.save_figure(fig, "pooling_curves.png")


@torch.no_grad()
def norms(ctx: RunContext, models: dict[str, Any], data: Any) -> None:
    """Histogram of visual-token norms on the test clips, unpooled vs pooled."""
    from paperlab.papers.pllava.runs import test_features

    fig, ax = ctx.figure(figsize=(5, 3.4))
    feats = test_features(data, ctx.config)
    for name, model in models.items():
        model.eval()
        n = model.video_tokens(feats.to(model.base.device)).norm(dim=-1).flatten().cpu()
        ax.hist(n.numpy(), bins=60, alpha=0.6, label=name, density=True)
    ax.set_yscale("log")
    ax.set_xlabel("visual-token norm")
    ax.legend()
    ctx.save_figure(fig, "token_norms.png")


def alpha(ctx: RunContext, alphas: tuple[float, ...], score: np.ndarray, acc: np.ndarray) -> None:
    """Caption score and QA accuracy against the evaluation alpha (paper units)."""
    fig, ax = ctx.figure(figsize=(5, 3.4))
    ax.plot(alphas, score, marker="o", label="caption score")
    ax.plot(alphas, acc, marker="s", label="QA accuracy")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("LoRA alpha at evaluation (r = 128 units)")
    ax.legend()
    ctx.save_figure(fig, "lora_alpha.png")
