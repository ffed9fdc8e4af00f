"""The README's semantic-guidance table: clones of probe references (outside the evaluation set)
with and without the first version's semantic guidance, on the default base model (trained, or
loaded from the disk cache).

    python -m paperlab.papers.motionclone.semantic_probe            # the README's rows, ~3 CPU-min
    python -m paperlab.papers.motionclone.semantic_probe --clips 2 --weights 0 1e3
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import ArtifactCache, default_cache_dir
from paperlab.core.device import torch_threads
from paperlab.papers.motionclone.claims import MotionCloneConfig
from paperlab.papers.motionclone.data import centroids, make_clips
from paperlab.papers.motionclone.experiments import (
    base_model,
    clone_config,
    judge_model,
    other_prompts,
)
from paperlab.papers.motionclone.judge import judge_clips
from paperlab.papers.motionclone.motionclone import clone_motion

ROWS = (  # (motion mode, semantic weight, location-aware)
    ("none", 0.0, False),
    ("sparse", 0.0, False),
    ("sparse", 1e3, True),
    ("sparse", 1e4, True),
    ("sparse", 1e5, True),
    ("sparse", 1e6, True),
    ("sparse", 1e5, False),
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=6, help="probe references (6)")
    p.add_argument("--seed", type=int, default=0, help="the base model's and the noise's (0)")
    p.add_argument("--weights", type=float, nargs="*", help="location-aware weights only")
    args = p.parse_args(argv)
    if args.clips < 1:
        p.error(f"--clips must be >= 1, got {args.clips}")
    rows = ROWS if args.weights is None else [("sparse", w, True) for w in args.weights]
    cfg = MotionCloneConfig()
    with TemporaryDirectory() as tmp, torch_threads(cfg.threads):
        ctx = RunContext(
            config=cfg,
            scale="default",
            seed=args.seed,
            device="cpu",
            out_dir=Path(tmp),
            progress=False,
            cache=ArtifactCache(default_cache_dir()),
        )
        model, _ = base_model(ctx)
        judge, _ = judge_model(ctx)
        # probe references: seeds 100/101, never the claims' (seed + 3 / seed + 4)
        refs = make_clips(args.clips, frames=cfg.frames, size=cfg.size, seed=100)
        prompts = other_prompts(refs.prompts, 101)
        print("| guidance | trajectory error (px) | colour + shape adherence | CPU-s |")
        print("|---|---|---|---|")
        for mode, weight, located in rows:
            clone_cfg = dataclasses.replace(clone_config(cfg, mode), semantic_weight=weight)
            cpu0 = time.process_time()
            x = clone_motion(
                model,
                refs.clips,
                prompts,
                clone_cfg,
                seed=args.seed,
                reference_prompt=refs.prompts if located else None,
            )
            cpu = time.process_time() - cpu0
            err = (centroids(x) - refs.centres).norm(dim=-1).mean().item()
            adherent = (judge_clips(judge, x) == prompts).all(dim=1).float().mean().item()
            name = mode if weight == 0 else f"{mode} + {'location-aware' if located else 'global'}"
            name += f" semantic {weight:g}" if weight else ""
            print(f"| {name} | {err:.2f} | {adherent:.2f} | {cpu:.1f} |", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
