"""The claims' figures: rows of generated canvases (8 each) next to the real ones."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from paperlab.claims import RunContext


def plot_samples(ctx: RunContext, file: str, rows: Mapping[str, list]) -> None:
    """One row of canvases per entry of ``rows`` (label -> images (N, 3, S, S) in [-1, 1] as
    nested lists, the first 8 shown), saved as an artifact of the result."""
    fig, axes = ctx.figure(len(rows), 1, figsize=(8, 1.2 * len(rows) + 0.3), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows.items(), strict=True):
        x = (np.asarray(images, dtype=np.float32)[:8] + 1) / 2
        strip = np.concatenate(
            [
                np.pad(im.transpose(1, 2, 0), ((1, 1), (1, 1), (0, 0)), constant_values=1)
                for im in x
            ],
            1,
        )
        ax.imshow(strip.clip(0, 1), interpolation="nearest")
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ctx.save_figure(fig, file)
