"""The claims' figures: DA-2K-mini bars per model, and the photo with each model's disparity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from paperlab.claims import RunContext
from paperlab.papers.depth_anything_v2 import data as D
from paperlab.papers.depth_anything_v2.transform import infer_disparity


def plot_bars(ctx: RunContext, m: Mapping[str, float], runs: Mapping[Any, Any]) -> None:
    """Pair accuracy and delta1 on the motorcycle photo: teacher, students (mean +- std)."""
    fig, axes = ctx.figure(1, 2, figsize=(8, 3.4))
    for ax, key in zip(axes, ("pair_acc", "delta1"), strict=True):
        names = ["synthetic", "real"]
        values = [m[f"{key}_{n}"] for n in names]
        errors = [m[f"{key}_{n}_std"] for n in names]
        labels = ["student\nsynthetic only", "student\npseudo-labelled real"]
        if key == "pair_acc":
            names.insert(0, "teacher")
            values.insert(0, m["teacher_pair_acc"])
            errors.insert(0, 0.0)
            labels.insert(0, "teacher\n(synthetic)")
        colours = [f"C{i + 3 - len(values)}" for i in range(len(values))]  # same per model
        ax.bar(range(len(values)), values, yerr=errors, capsize=3, color=colours)
        ax.set_xticks(range(len(values)), labels, fontsize=7)
        if key == "pair_acc":
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            ax.axhline(m["row_prior_pair_acc"], color="grey", lw=0.8, ls="--")
            ax.set_title("DA-2K-mini pair accuracy (dotted: chance, dashed: row prior)", fontsize=8)
        else:
            ax.set_title("delta1 on the motorcycle photo", fontsize=9)
        ax.set_ylim(0, 1.05)
    ctx.save_figure(fig, "real_vs_synthetic.png")


def plot_photo(ctx: RunContext, runs: Mapping[Any, Any]) -> None:
    """The photo, its true disparity, and the teacher's and the students' predictions."""
    from paperlab.papers.depth_anything_v2.experiments import RunSpec

    photo, disp, valid = D.motorcycle()
    panels = [("photo", photo), ("ground truth", np.where(valid, disp, np.nan))]
    for kind in ("teacher", "synthetic", "real"):
        model = runs[RunSpec(kind, ctx.seed)][0]
        device = str(next(model.parameters()).device)
        size = ctx.config.eval_size
        panels.append((kind, infer_disparity(model, photo, input_size=size, device=device)))
    fig, axes = ctx.figure(1, len(panels), figsize=(3 * len(panels), 2.4))
    for ax, (title, image) in zip(axes, panels, strict=True):
        ax.imshow(image, cmap=None if image.ndim == 3 else "Spectral_r")
        ax.set_title(title if title in ("photo", "ground truth") else f"{title} model", fontsize=9)
        ax.axis("off")
    ctx.save_figure(fig, "motorcycle.png")
