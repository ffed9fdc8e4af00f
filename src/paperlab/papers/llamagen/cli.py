"""`paperlab llamagen`: train the two stages on a folder of your own images, sample a grid.

paperlab llamagen train my_images/ --out llamagen-ckpt --size 16
paperlab llamagen sample llamagen-ckpt --out grid.png --per-class 4 --cfg-scale 2
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from paperlab.cli_args import add_image_model_commands, cli_device, require_positive
from paperlab.core.errors import UserError

DESCRIPTION = """\
LlamaGen (arXiv 2406.06525) on your own images. `train` reads IMAGES (a folder: sub-folders
are the classes, a flat folder is one class; --demo draws procedural shapes instead), trains the
VQ tokenizer, then the class-conditional Llama generator on its codes, and writes OUT/ with
tokenizer.safetensors, generator.safetensors, classes.json and samples.png. `sample` loads OUT/
and writes a PNG grid, one row per class, with classifier-free guidance."""

EPILOG = """\
examples:
  paperlab llamagen train --demo --out llamagen-ckpt
  paperlab llamagen train photos/ --size 16 --out llamagen-ckpt --tok-steps 300 --gen-steps 500
  paperlab llamagen sample llamagen-ckpt --out grid.png --class "red circle" --per-class 8
"""

DOWNSAMPLE = {2: (1, 2), 4: (1, 2, 2), 8: (1, 2, 2, 4)}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "llamagen",
        help="LlamaGen: train tokenizer + generator on an image folder, sample a PNG grid",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=fmt,
    )
    tr, sa = add_image_model_commands(p, "llamagen", epilog=EPILOG)
    tr.add_argument("--downsample", type=int, default=2, choices=sorted(DOWNSAMPLE))
    tr.add_argument("--codebook-size", type=int, default=256, help="image codes (256)")
    tr.add_argument("--tok-steps", type=int, default=300, help="tokenizer steps (300)")
    tr.add_argument("--gen-steps", type=int, default=500, help="generator steps (500)")
    tr.add_argument("--dim", type=int, default=128, help="generator width (128)")
    tr.add_argument("--layers", type=int, default=4, help="generator layers (4)")
    sa.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (1.0)")
    sa.add_argument("--top-k", type=int, default=0, help="0 = no filter (0)")
    return p


def run(args: argparse.Namespace) -> int:
    device = cli_device(args)
    if args.llamagen_command == "train":
        return _train(args, device)
    return _sample(args, device)


def _train(args: argparse.Namespace, device: str) -> int:
    import torch

    from paperlab.core.data.image_io import load_image_folder, save_grid_png
    from paperlab.core.data.images import make_shapes
    from paperlab.core.files import write_text_atomic
    from paperlab.papers.llamagen.generator import LlamaGenConfig
    from paperlab.papers.llamagen.sample import generate_images
    from paperlab.papers.llamagen.tokenizer import VQTokenizerConfig
    from paperlab.papers.llamagen.training import train_generator, train_tokenizer

    require_positive(args, "size", "codebook_size", "tok_steps", "gen_steps", "batch_size")
    require_positive(args, "dim", "layers")
    if args.size % args.downsample:
        raise UserError(f"--size {args.size} must be divisible by --downsample {args.downsample}")
    if (args.images is None) == (not args.demo):
        raise UserError("train: give an image folder or --demo (not both)")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out: {args.out} exists and is not a folder")
    if args.demo:
        data = make_shapes(600, size=args.size, seed=args.seed)
    else:
        data = load_image_folder(args.images, size=args.size)
    print(f"{len(data)} images, {data.num_classes} classes, {args.size} px, device {device}")
    tok_cfg = VQTokenizerConfig(
        in_channels=data.channels,
        channels=32,
        channel_mult=DOWNSAMPLE[args.downsample],
        z_channels=64,
        codebook_size=args.codebook_size,
    )
    progress = not args.no_progress
    tokenizer, tok_hist = train_tokenizer(
        data.images,
        config=tok_cfg,
        steps=args.tok_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        device=device,
        progress=progress,
    )
    heads = 4 if args.dim % 16 == 0 else 1
    gen_cfg = LlamaGenConfig(
        codebook_size=args.codebook_size,
        num_classes=data.num_classes,
        grid_size=args.size // args.downsample,
        dim=args.dim,
        n_layers=args.layers,
        n_heads=heads,
    )
    generator, gen_hist = train_generator(
        tokenizer,
        data.images,
        data.labels,
        config=gen_cfg,
        steps=args.gen_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        device=device,
        progress=progress,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(args.out)
    generator.save_pretrained(args.out)
    meta = {
        "classes": list(data.class_names),
        "size": args.size,
        "tokenizer_loss": tok_hist["loss"][-1],
        "generator_loss": gen_hist["loss"][-1],
    }
    write_text_atomic(args.out / "classes.json", json.dumps(meta, indent=2) + "\n")
    labels = torch.arange(data.num_classes).repeat_interleave(4)
    images = generate_images(generator, tokenizer, labels, cfg_scale=2.0, seed=args.seed)
    save_grid_png(images, args.out / "samples.png", nrow=4)
    print(f"wrote {args.out}/ (tokenizer, generator, classes.json, samples.png)")
    return 0


def _sample(args: argparse.Namespace, device: str) -> int:
    import torch

    from paperlab.core.data.image_io import class_index, save_grid_png
    from paperlab.papers.llamagen.generator import LlamaGen
    from paperlab.papers.llamagen.sample import generate_images
    from paperlab.papers.llamagen.tokenizer import VQTokenizer

    require_positive(args, "per_class")
    if args.temperature < 0:
        raise UserError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_k < 0:
        raise UserError(f"--top-k must be >= 0, got {args.top_k}")
    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out: {args.out} must end in .png")
    meta_file = args.checkpoint / "classes.json"
    if not meta_file.is_file():
        raise UserError(f"checkpoint: {args.checkpoint} has no classes.json (not from `train`)")
    classes = json.loads(meta_file.read_text(encoding="utf-8"))["classes"]
    try:
        tokenizer = VQTokenizer.from_pretrained(args.checkpoint, device=device)
        generator = LlamaGen.from_pretrained(args.checkpoint, device=device)
    except (OSError, ValueError) as e:
        raise UserError(f"checkpoint: {e}") from None
    wanted = [class_index(c, classes) for c in args.classes] or list(range(len(classes)))
    labels = torch.tensor(wanted).repeat_interleave(args.per_class)
    images = generate_images(
        generator,
        tokenizer,
        labels,
        cfg_scale=args.cfg_scale,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
    )
    save_grid_png(images, args.out, nrow=args.per_class)
    print(f"wrote {args.out}: {len(wanted)} class(es) x {args.per_class}")
    return 0
