"""`paperlab motionclone`: clone the motion of a reference clip into a prompted subject.

paperlab motionclone --demo --prompt "green plus" --out runs/mc          # a procedural reference
paperlab motionclone --reference clip/ --prompt "red bar" --model runs/mc/base.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from paperlab.cli_args import cli_device
from paperlab.core.errors import UserError

KIND = "motionclone-base"
EPILOG = """examples:
  paperlab motionclone --demo --prompt "green plus" --out runs/mc
  paperlab motionclone --reference runs/mc/reference --prompt "red bar" \\
      --model runs/mc/base.safetensors --out runs/mc2
  paperlab motionclone --reference clip.gif --prompt "blue square" --model base.safetensors \\
      --mode dense --weight 2e5
  paperlab motionclone --demo --prompt "green plus" --semantic-weight 1e3 --out runs/mc3

The base model is a tiny text-to-video diffusion model of the procedural world (colours red,
green, blue, yellow; shapes square, plus, bar; 16 px, 8 frames). Without --model (or with a
--model path that does not exist yet) one is trained first (--train-steps) and saved there.
A CLIP is a folder of frames, a .gif or a .npy array (F, H, W, 3) uint8 or floats in [0, 1];
it must have the model's frame count; it is resized to the model's size.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "motionclone",
        help="MotionClone: training-free motion cloning with sparse temporal attention",
        description="MotionClone (arXiv 2406.05338): noise the reference once, keep the top-1 "
        "temporal attention per query, and guide a text-to-video model's sampling to match it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--reference", type=Path, help="the reference CLIP (folder, .gif or .npy)")
    src.add_argument("--demo", action="store_true", help="make a procedural reference clip")
    p.add_argument("--prompt", required=True, help='"<colour> <shape>", e.g. "red square"')
    p.add_argument("--out", type=Path, default=Path("motionclone-out"), help="output folder")
    p.add_argument("--model", type=Path, help="base model .safetensors (trained if missing)")
    p.add_argument("--train-steps", type=int, default=400, help="base model training steps (400)")
    p.add_argument("--steps", type=int, default=30, help="DDIM steps (30; official 300)")
    p.add_argument("--guidance-steps", type=int, default=18, help="guided steps (18; official 180)")
    p.add_argument(
        "--weight", type=float, default=2e6, help="motion guidance weight (2e6; official 2000)"
    )
    p.add_argument("--cfg", type=float, default=7.5, help="CFG: eps_c + cfg (eps_c - eps_u) (7.5)")
    p.add_argument(
        "--mode",
        choices=("sparse", "dense", "none"),
        default="sparse",
        help="top-1 temporal attention (MotionClone), the whole map, or no guidance",
    )
    p.add_argument(
        "--semantic-weight",
        type=float,
        default=0.0,
        help="the first version's semantic guidance towards a plain sample of the prompt "
        "(0: off, as the current official code; try 1e3)",
    )
    p.add_argument(
        "--reference-prompt",
        help='the reference\'s own "<colour> <shape>": makes the semantic guidance '
        "location-aware (the subject stays where the reference's is); --demo knows it",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and the demo clip (0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (auto)")
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: tiny models are faster)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def read_clip(path: Path, *, frames: int, size: int) -> Any:
    """A reference clip (1, 3, F, size, size) in [-1, 1] from a folder, .gif or .npy."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from paperlab.core.data.image_io import read_frames

    if not path.exists():
        raise UserError(f"--reference: {path} does not exist")
    if path.is_dir():
        clip = read_frames(path)  # (T, C, H, W) in [0, 1]; one size, >= 2 frames
    elif path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            pics = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
        clip = torch.from_numpy(np.stack(pics)).permute(0, 3, 1, 2).float() / 255
    elif path.suffix.lower() == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.ndim != 4 or array.shape[-1] != 3:
            raise UserError(f"--reference: {path} holds {array.shape}; want (F, H, W, 3)")
        array = array.astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0)
        clip = torch.from_numpy(array).permute(0, 3, 1, 2)
    else:
        raise UserError(f"--reference: {path} is not a folder, .gif or .npy")
    if clip.shape[0] < 2:
        raise UserError(f"--reference: {path} has {clip.shape[0]} frame; a clip needs several")
    if clip.shape[0] != frames:
        raise UserError(f"--reference: {path} has {clip.shape[0]} frames; the model takes {frames}")
    if not torch.isfinite(clip).all() or clip.min() < 0 or clip.max() > 1:
        raise UserError(f"--reference: {path} has values outside [0, 1]")
    clip = F.interpolate(clip, size=(size, size), mode="area")
    return (clip * 2 - 1).permute(1, 0, 2, 3).unsqueeze(0)


def _model(args: argparse.Namespace, device: str) -> Any:
    import torch

    from paperlab.core.checkpoint import save_model
    from paperlab.core.diffusion import make_scheduler, train_diffusion
    from paperlab.papers.motionclone.data import make_clips
    from paperlab.papers.motionclone.model import ClipDenoiser, VideoModelConfig, empty_prompt

    path = args.model or args.out / "base.safetensors"
    if path.exists():
        from paperlab.core.checkpoint import load_model

        def build(c: dict) -> ClipDenoiser:
            c = {"prediction": "epsilon", **c}  # checkpoints without the field predicted eps
            return ClipDenoiser(VideoModelConfig(**{**c, "widths": tuple(c["widths"])}))

        model, _ = load_model(path, build, kind=KIND, map_location=device)
        return model.eval()
    if args.train_steps < 1:
        raise UserError(f"--train-steps must be >= 1, got {args.train_steps}")
    cfg = VideoModelConfig()
    data = make_clips(2000, frames=cfg.frames, size=cfg.size, seed=args.seed)
    torch.manual_seed(args.seed)
    model = ClipDenoiser(cfg)
    print(f"training the base model ({args.train_steps} steps) -> {path}", file=sys.stderr)
    train_diffusion(
        model,
        data.clips,
        cond=data.prompts,
        steps=args.train_steps,
        batch_size=8,
        lr=2e-3,
        seed=args.seed,
        device=device,
        cond_drop_prob=0.1,
        null_cond=empty_prompt(1)[0],
        progress=not args.no_progress,
        warmup_steps=max(1, args.train_steps // 20),
        scheduler=make_scheduler("ddpm", prediction_type=cfg.prediction),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "size": cfg.size,
        "frames": cfg.frames,
        "widths": list(cfg.widths),
        "text_dim": cfg.text_dim,
        "heads": cfg.heads,
        "prediction": cfg.prediction,
    }
    save_model(path, model, kind=KIND, config=config)
    return model.eval()


def _save_clip(clip: Any, folder: Path, name: str) -> None:
    from paperlab.core.data.image_io import save_gif, save_png

    frames = ((clip[0].permute(1, 0, 2, 3).clamp(-1, 1) + 1) / 2).cpu()  # (F, 3, H, W)
    (folder / name).mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        save_png(f, folder / name / f"frame_{i:02d}.png")
    save_gif(frames, folder / f"{name}.gif", fps=4, scale=8)


def run(args: argparse.Namespace) -> int:
    device = cli_device(args)
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    from paperlab.core.device import torch_threads

    try:
        with torch_threads(args.threads):
            return _run(args, device)
    except ValueError as e:  # a bad prompt, option or checkpoint: one line
        raise UserError(str(e)) from None


def _run(args: argparse.Namespace, device: str) -> int:
    import torch

    from paperlab.papers.motionclone.data import make_clips, parse_prompt
    from paperlab.papers.motionclone.motionclone import CloneConfig, clone_motion

    colour, shape = parse_prompt(args.prompt)  # before any training: a typo costs nothing
    reference_prompt = None
    if args.reference_prompt is not None:
        try:
            reference_prompt = torch.tensor([parse_prompt(args.reference_prompt)], device=device)
        except ValueError as e:
            raise UserError(f"--reference-prompt: {e}") from None
    cfg = CloneConfig(
        steps=args.steps,
        guidance_steps=args.guidance_steps,
        weight=args.weight,
        cfg=args.cfg,
        mode=args.mode,
        semantic_weight=args.semantic_weight,
    )
    if args.reference is not None:
        reference = read_clip(args.reference, frames=8, size=16)
    model = _model(args, device)
    if args.demo:
        demo = make_clips(1, frames=model.cfg.frames, size=model.cfg.size, seed=args.seed + 7)
        reference = demo.clips
        if reference_prompt is None:
            reference_prompt = demo.prompts.to(device)
        _save_clip(reference, args.out, "reference")
    elif reference.shape[2] != model.cfg.frames:
        raise UserError(
            f"--reference: {reference.shape[2]} frames; the model takes {model.cfg.frames}"
        )
    prompt = torch.tensor([[colour, shape]], device=device)
    clip = clone_motion(
        model, reference.to(device), prompt, cfg, seed=args.seed, reference_prompt=reference_prompt
    )
    _save_clip(clip, args.out, "clone")
    print(f"{args.mode} motion clone of '{args.prompt}' -> {args.out / 'clone.gif'}")
    return 0
