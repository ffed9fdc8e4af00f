"""`paperlab pllava train|ask|make-clip`: a pooled image-LLM that answers questions about clips.

paperlab pllava make-clip clip/ --task motion --seed 3      # a procedural clip as PNG frames
paperlab pllava train --out ckpt/pllava                     # image-LLM, then PLLaVA (minutes)
paperlab pllava ask clip/ "which way?" --checkpoint ckpt/pllava
paperlab pllava ask clip/ "describe the video." --demo      # trains a small model first
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from paperlab.claims import UserError
from paperlab.cli_args import add_run_args, cli_device

EPILOG = """examples:
  paperlab pllava make-clip clip/ --task motion --seed 3
  paperlab pllava train --out ckpt/pllava
  paperlab pllava ask clip/ "which way?" --checkpoint ckpt/pllava
  paperlab pllava ask clip/ "describe the video." --checkpoint ckpt/pllava --alpha 4
  paperlab pllava ask clip/ "first colour?" --demo

questions the models are trained on: "which way?", "first colour?", "how many flashes?",
"describe the video." (and, for single images, "colour?", "shape?", "where?",
"describe the image.")
"""

# a small model for --demo: the default recipe with fewer images, clips and steps
DEMO = (
    ("image_train", 1000),
    ("image_test", 50),
    ("vision_steps", 120),
    ("image_steps", 200),
    ("video_train", 400),
    ("video_test", 30),
    ("video_steps", 100),
    ("evals", 1),
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pllava",
        help="PLLaVA: ask a pooled image-LLM about a clip",
        description="PLLaVA (arXiv 2404.16994): an image-LLM extended to video by adaptive "
        "average pooling of its frame tokens, tuned with LoRA; a tiny one trained here on "
        "procedural clips.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(dest="pllava_command", metavar="train|ask|make-clip", required=True)
    t = cmds.add_parser(
        "train",
        help="train the image-LLM, then PLLaVA on clips; write OUT/model.safetensors",
        description="Trains the tiny image-LLM on procedural images, then tunes it as PLLaVA "
        "(projector + LoRA on q/v) on procedural clips, and writes OUT/model.safetensors and "
        "OUT/figures.json. Takes a few minutes at the default sizes.",
    )
    t.add_argument("--out", type=Path, required=True, help="folder for the checkpoint")
    t.add_argument(
        "--pooling",
        default="8,2,2",
        help="pooling shape T,h,w of the frame tokens, or 'none' for the n-frame baseline (8,2,2)",
    )
    t.add_argument(
        "--scale",
        choices=("tiny", "default", "full"),
        default="default",
        help="model and data sizes of the claims' preset (default; tiny: seconds, untrained)",
    )
    t.add_argument("--video-steps", type=int, help="video tuning steps (the scale's)")
    t.add_argument("--image-steps", type=int, help="image-LLM steps (the scale's)")
    _run_args(t)
    a = cmds.add_parser(
        "ask",
        help="answer a question about a folder of frames",
        description="Reads CLIP_DIR's frames (natural name order, one size, at least 2), "
        "resizes them to the model's size, samples the model's frame count (the middle of "
        "equal segments) and answers QUESTION.",
    )
    a.add_argument("clip_dir", type=Path, metavar="CLIP_DIR", help="a folder of frames")
    a.add_argument("question", help='the question, e.g. "which way?"')
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="a folder written by `pllava train`")
    src.add_argument(
        "--demo", action="store_true", help="train a small model first (~30 CPU-seconds)"
    )
    a.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="LoRA alpha at evaluation, in the paper's units (r = 128; trained with 32; the "
        "official evaluation uses 4); default: the training alpha",
    )
    a.add_argument("--max-new-tokens", type=int, default=48, help="answer length limit (48)")
    _run_args(a)
    m = cmds.add_parser(
        "make-clip",
        help="write a procedural clip as PNG frames (for trying `ask`)",
        description="Writes OUT/frame_00.png ... one procedural clip of the miniature and "
        "prints its question and answer (and caption, for motion clips).",
    )
    m.add_argument("out", type=Path, help="folder for the frames")
    m.add_argument(
        "--task",
        choices=("motion", "order", "count"),
        default="motion",
        help="what happens in the clip: a shape moves, two shapes in turn, a shape flashes "
        "(motion)",
    )
    m.add_argument("--seed", type=int, default=0, help="the clip's seed (0)")


def _pooling(text: str) -> tuple[int, int, int] | None:
    if text.strip().lower() == "none":
        return None
    try:
        shape = tuple(int(x) for x in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UserError(f"--pooling must be T,h,w (three positive ints) or none, got {text!r}")
    return shape  # type: ignore[return-value]


def _config(scale: str = "default", **overrides: Any) -> Any:
    from paperlab.papers.pllava.claims import PRESETS, PLLaVAClaimsConfig

    try:
        return PLLaVAClaimsConfig(**(dict(PRESETS[scale]) | overrides))
    except ValueError as e:
        raise UserError(str(e)) from None


def _train(args: argparse.Namespace, device: str) -> int:
    import json

    from paperlab.core.files import write_text_atomic
    from paperlab.papers.pllava.runs import train_pllava

    steps = {}
    for name in ("video_steps", "image_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if value is not None:
            steps[name] = value
    pooling = _pooling(args.pooling)
    cfg = _config(args.scale, **steps)
    grid = cfg.image_size // cfg.patch_size
    if pooling and (pooling[0] > cfg.num_frames or max(pooling[1:]) > grid):
        raise UserError(f"--pooling {args.pooling}: at most {cfg.num_frames},{grid},{grid}")
    from paperlab.core.device import torch_threads

    with torch_threads(cfg.threads):
        model, figures = train_pllava(
            cfg,
            seed=args.seed,
            pooling_shape=pooling,
            device=device,
            progress=not args.no_progress,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    file = model.save_pretrained(args.out)
    write_text_atomic(args.out / "figures.json", json.dumps(figures, indent=1))
    print(
        f"wrote {file}: image QA {figures['image_acc']:.3f}, video QA {figures['acc']:.3f}, "
        f"caption score {figures['caption_score']:.3f}"
    )
    return 0


def load_clip(folder: Path, model: Any) -> Any:
    """The clip at ``folder`` as (1, num_frames, C, S, S) for ``model`` (frames resized)."""
    import torch.nn.functional as F

    from paperlab.core.data.image_io import read_frames
    from paperlab.papers.pllava.data import sample_frame_indices

    frames = read_frames(folder, min_frames=2)  # one size, >= 2 frames, else a UserError
    size = model.base.config.image_size
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True)
    n, t = frames.shape[0], model.num_frames
    if n >= t:
        idx = sample_frame_indices(n, t, mode="middle")
    else:  # fewer frames than the model takes: repeat them (the official projector does)
        idx = [k * n // t for k in range(t)]
    return frames[idx].clamp(0, 1)[None]


def _ask(args: argparse.Namespace, device: str) -> int:
    from paperlab.papers.pllava.model import PLLaVA

    if not args.clip_dir.is_dir():
        raise UserError(f"CLIP_DIR: {args.clip_dir} is not a folder")
    if not args.question.strip():
        raise UserError("question: empty")
    if args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.alpha is not None and args.alpha <= 0:
        raise UserError(f"--alpha must be > 0, got {args.alpha}")
    if args.checkpoint is not None:
        if not (args.checkpoint / "model.safetensors").is_file():
            raise UserError(f"--checkpoint: no model.safetensors in {args.checkpoint}")
        try:
            model = PLLaVA.from_pretrained(args.checkpoint, device=device)
        except ValueError as e:
            raise UserError(f"--checkpoint: {e}") from None
        clip = load_clip(args.clip_dir, model)
    else:
        from paperlab.core.data.image_io import read_frames
        from paperlab.papers.pllava.runs import train_pllava

        read_frames(args.clip_dir, min_frames=2)  # check the clip before minutes of training
        from paperlab.core.device import torch_threads

        print("--demo: training a small PLLaVA first", file=sys.stderr)
        cfg = _config("default", **dict(DEMO))
        with torch_threads(cfg.threads):
            model, _ = train_pllava(
                cfg, seed=args.seed, device=device, progress=not args.no_progress
            )
        model = model.to(device)
        clip = load_clip(args.clip_dir, model)
    if args.alpha is not None:
        model.set_lora_alpha(args.alpha * model.lora_r / 128)
    answer = model.generate(
        clip.to(device), [args.question], max_new_tokens=args.max_new_tokens, seed=args.seed
    )[0]
    print(answer)
    return 0


def _make_clip(args: argparse.Namespace) -> int:
    from paperlab.core.data.image_io import save_png
    from paperlab.papers.pllava.data import VIDEO_PROMPTS, make_clips

    clips = make_clips(1, seed=args.seed, tasks=(args.task,))
    args.out.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(clips.frames[0]):
        save_png(frame, args.out / f"frame_{t:02d}.png")
    print(f"{VIDEO_PROMPTS[args.task]} -> {clips.answer[0]}")
    if clips.caption[0]:
        print(f"{VIDEO_PROMPTS['caption']} -> {clips.caption[0]}")
    return 0


def _run_args(p: argparse.ArgumentParser) -> None:
    add_run_args(p, seed_help="seed of data and training (0)")


def run(args: argparse.Namespace) -> int:
    if args.pllava_command == "make-clip":
        return _make_clip(args)
    device = cli_device(args)
    if args.pllava_command == "train":
        return _train(args, device)
    return _ask(args, device)
