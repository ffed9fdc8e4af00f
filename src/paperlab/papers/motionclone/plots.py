"""The claims' figures: frames of the reference and of its clones (no guidance, sparse top-1,
dense), and their centroid trajectories against the reference's."""

from __future__ import annotations

import numpy as np
import torch

from paperlab.claims import RunContext
from paperlab.papers.motionclone.data import COLOURS, SHAPES, centroids


def _rgb(frame: torch.Tensor) -> np.ndarray:
    return ((frame.permute(1, 2, 0).clamp(-1, 1) + 1) / 2).numpy()


def plot_clones(
    ctx: RunContext,
    reference: torch.Tensor,
    clips: dict[str, torch.Tensor],
    centres: torch.Tensor,
    prompts: torch.Tensor,
    *,
    shown: int = 2,
) -> None:
    """``motionclone_frames.png`` (rows: reference, then each mode; frames across) for the
    first ``shown`` references, and ``motionclone_trajectories.png`` for all of them."""
    shown = min(shown, reference.shape[0])
    frames = reference.shape[2]
    rows = shown * (1 + len(clips))
    fig, axes = ctx.figure(rows, frames, figsize=(frames * 0.9, rows * 0.95), squeeze=False)
    r = 0
    for i in range(shown):
        colour, shape = list(COLOURS)[int(prompts[i, 0])], SHAPES[int(prompts[i, 1])]
        for name, clip in [("reference", reference), *clips.items()]:
            for f in range(frames):
                ax = axes[r, f]
                ax.imshow(_rgb(clip[i, :, f]), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            label = name if name == "reference" else f"{name}\n{colour} {shape}"
            axes[r, 0].set_ylabel(label, fontsize=6)
            r += 1
    ctx.save_figure(fig, "motionclone_frames.png")

    n = reference.shape[0]
    fig, axes = ctx.figure(1, n, figsize=(2.0 * n, 2.2), squeeze=False)
    for i in range(n):
        ax = axes[0, i]
        ax.plot(centres[i, :, 1], centres[i, :, 0], "k-o", ms=3, label="reference")
        for j, (name, clip) in enumerate(clips.items()):
            c = centroids(clip[i : i + 1])[0]
            ax.plot(c[:, 1], c[:, 0], "-o", ms=2, color=f"C{j}", label=name)
        size = reference.shape[-1]
        ax.set_xlim(0, size - 1)
        ax.set_ylim(size - 1, 0)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].legend(fontsize=5, loc="lower left")
    ctx.save_figure(fig, "motionclone_trajectories.png")
