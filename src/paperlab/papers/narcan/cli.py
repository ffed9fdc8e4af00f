"""`paperlab narcan fit|edit`: fit NaRCan to a clip, then edit its canonical image once.

paperlab narcan fit --demo --out runs/narcan            # a synthetic clip, fitted with the prior
paperlab narcan fit frames/ --out runs/narcan --no-prior
paperlab narcan edit runs/narcan --edit my_canonical.png --out runs/narcan/edited
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from paperlab.cli_args import add_run_args, cli_device, require_positive
from paperlab.core.errors import UserError

EPILOG = """examples:
  paperlab narcan fit --demo --out runs/narcan
  paperlab narcan fit path/to/frames --out runs/narcan --steps 1200
  paperlab narcan edit runs/narcan --demo-edit --out runs/narcan/edited
  paperlab narcan edit runs/narcan --edit runs/narcan/canonical_edited.png --out edited/
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "narcan",
        help="NaRCan: fit a canonical image with a diffusion prior to a clip; edit it once",
        description="NaRCan (arXiv 2406.06523): a homography + residual deformation field and "
        "a canonical image fitted to a clip, regularised by a tiny diffusion prior; an edit of "
        "the canonical image is propagated to every frame.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(dest="narcan_command", metavar="fit|edit", required=True)
    f = cmds.add_parser(
        "fit",
        help="fit the fields to a folder of frames (or --demo)",
        description="Writes OUT/fields.safetensors (the fitted fields, the canonical region and "
        "the config) and OUT/canonical.png (the canonical image to edit); with --demo also "
        "OUT/frames/ (the synthetic clip) and OUT/canonical_edited.png (a sticker edit).",
    )
    f.add_argument("video", nargs="?", type=Path, help="a folder of frames (sorted by name)")
    f.add_argument("--demo", action="store_true", help="fit a synthetic clip of a bundled photo")
    f.add_argument("--out", type=Path, required=True, help="output folder")
    f.add_argument("--size", type=int, default=32, help="resize frames to SIZE x SIZE px (32)")
    f.add_argument("--max-frames", type=int, default=32, help="use at most this many frames (32)")
    f.add_argument("--homography-steps", type=int, default=300, help="stage-1 steps (300)")
    f.add_argument(
        "--steps",
        type=int,
        default=600,
        help="stage-2 steps; the prior's schedule scales with them (600)",
    )
    f.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    f.add_argument("--hidden", type=int, default=64, help="SIREN width (64)")
    f.add_argument(
        "--canonical-size",
        type=int,
        default=48,
        help="canonical image side in px, a multiple of 4 (48)",
    )
    f.add_argument("--no-prior", action="store_true", help="fit without the diffusion prior")
    _run_args(f)
    e = cmds.add_parser(
        "edit",
        help="propagate an edited canonical image to every frame",
        description="Reads FIT/fields.safetensors and an edited copy of FIT/canonical.png; writes "
        "OUT/frame_<k>.png for every frame and OUT/edited.gif.",
    )
    e.add_argument("fit", type=Path, help="a folder written by `paperlab narcan fit`")
    e.add_argument("--edit", type=Path, help="the edited canonical image (any size; resized)")
    e.add_argument("--demo-edit", action="store_true", help="paint a sticker on FIT/canonical.png")
    e.add_argument("--out", type=Path, required=True, help="output folder")
    e.add_argument("--fps", type=float, default=8.0, help="GIF frames per second (8)")
    e.add_argument("--scale", type=int, default=4, help="GIF enlargement, nearest (4)")
    _run_args(e)


def _fit(args: argparse.Namespace, device: str) -> int:
    import torch

    from paperlab.core.data.image_io import read_frames, save_png
    from paperlab.papers.narcan.pipeline import fit_video, paste_sticker, save_fit

    require_positive(
        args, "size", "max_frames", "homography_steps", "steps", "hidden", "canonical_size"
    )
    if args.canonical_size % 4:
        raise UserError(f"--canonical-size must be a multiple of 4, got {args.canonical_size}")
    if args.lr <= 0:
        raise UserError(f"--lr must be > 0, got {args.lr}")
    if args.demo == (args.video is not None):
        raise UserError("give a frames folder or --demo (one of them)")
    picture = ""
    if args.size < 16:
        raise UserError(f"--size must be >= 16 (the prior's patches), got {args.size}")
    if args.demo:
        from paperlab.papers.narcan.video import make_clip

        clip = make_clip(size=args.size, seed=args.seed, num_frames=min(24, args.max_frames))
        frames, picture = clip.frames, clip.picture
    else:
        frames = read_frames(args.video, size=None, min_frames=3)[: args.max_frames] * 2 - 1
        frames = torch.nn.functional.interpolate(
            frames, size=(args.size, args.size), mode="area"
        ).clamp(-1, 1)
    model, info = fit_video(
        frames,
        homography_steps=args.homography_steps,
        steps=args.steps,
        lr=args.lr,
        hidden=args.hidden,
        canonical_size=args.canonical_size,
        prior=not args.no_prior,
        exclude_picture=picture,
        seed=args.seed,
        device=device,
        progress=not args.no_progress,
    )
    save_fit(model, args.out)
    if args.demo:
        from paperlab.core.data.image_io import save_gif

        for k, frame in enumerate(frames):
            save_png((frame + 1) / 2, args.out / "frames" / f"frame_{k:03d}.png")
        save_gif((frames + 1) / 2, args.out / "input.gif", scale=4)
        with torch.no_grad():
            edited = paste_sticker(model.render_canonical(), seed=args.seed)
        save_png((edited + 1) / 2, args.out / "canonical_edited.png")
    print(
        f"fitted {len(frames)} frames ({info['prior_calls']} diffusion-prior calls); wrote "
        f"{args.out / 'fields.safetensors'} and {args.out / 'canonical.png'}"
    )
    return 0


def _edit(args: argparse.Namespace, device: str) -> int:
    from paperlab.core.data.image_io import read_image, save_gif, save_png
    from paperlab.papers.narcan.pipeline import CANONICAL_FILE, load_fit, paste_sticker

    if args.edit is None and not args.demo_edit:
        raise UserError("give --edit EDITED.png (or --demo-edit)")
    if args.fps <= 0 or args.scale < 1:
        raise UserError(f"--fps must be > 0 and --scale >= 1, got {args.fps}, {args.scale}")
    if not (args.fit / "fields.safetensors").is_file():
        raise UserError(f"fit: {args.fit} has no fields.safetensors (run `paperlab narcan fit`)")
    model = load_fit(args.fit, device=device)
    size = model.canonical_size
    if args.demo_edit:
        canonical = read_image(args.fit / CANONICAL_FILE, size=size) * 2 - 1
        edited = paste_sticker(canonical, seed=args.seed)
    else:
        if not args.edit.is_file():
            raise UserError(f"--edit: {args.edit} is not a file")
        edited = read_image(args.edit, size=size) * 2 - 1
    frames = (model.propagate(edited.to(model.region.device)).cpu().clamp(-1, 1) + 1) / 2
    for k, frame in enumerate(frames):
        save_png(frame, args.out / f"frame_{k:03d}.png")
    save_gif(frames, args.out / "edited.gif", fps=args.fps, scale=args.scale)
    print(f"wrote {len(frames)} edited frames and {args.out / 'edited.gif'}")
    return 0


def _run_args(p: argparse.ArgumentParser) -> None:
    add_run_args(p, seed_help="seed of the clip (--demo) and the fit (0)")


def run(args: argparse.Namespace) -> int:
    device = cli_device(args)
    import contextlib

    from paperlab.core.device import torch_threads

    # one thread on a CPU: tiny models, whose cost is per-op overhead
    threads = torch_threads(1) if device == "cpu" else contextlib.nullcontext()
    try:
        with threads:
            if args.narcan_command == "fit":
                return _fit(args, device)
            return _edit(args, device)
    except ValueError as e:  # a malformed checkpoint or argument: one line
        raise UserError(str(e)) from None
    except KeyboardInterrupt:
        print("paperlab: interrupted; nothing was written", file=sys.stderr)
        return 130
