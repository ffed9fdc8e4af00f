"""`paperlab titok`: train a TiTok tokenizer and a generator on a folder of your images, sample.

paperlab titok train my_images/ --out titok-ckpt --size 16 --tokens 8
paperlab titok sample titok-ckpt --out grid.png --per-class 4
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from paperlab.cli_args import add_image_model_commands, cli_device, require_positive
from paperlab.core.errors import UserError

DESCRIPTION = """\
TiTok (arXiv 2406.07550) on your own images. `train` reads IMAGES (a folder: sub-folders are
the classes, a flat folder is one class; --demo draws procedural shapes instead), trains the 1-D
tokenizer (K latent tokens per image), then a class-conditional MaskGIT (default, as TiTok) or
AR generator on its tokens, and writes OUT/ with tokenizer/ (model.safetensors, config.json),
generator.safetensors, classes.json and samples.png. `sample` loads OUT/ and writes a PNG grid,
one row per class."""

EPILOG = """\
examples:
  paperlab titok train --demo --out titok-ckpt
  paperlab titok train photos/ --size 16 --tokens 8 --generator ar --out titok-ckpt
  paperlab titok sample titok-ckpt --out grid.png --class "red circle" --per-class 8 --steps 8
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "titok",
        help="TiTok: train a 1-D tokenizer + generator on an image folder, sample a PNG grid",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=fmt,
    )
    tr, sa = add_image_model_commands(p, "titok", epilog=EPILOG)
    tr.add_argument("--patch-size", type=int, default=4, help="ViT patch size (4)")
    tr.add_argument("--tokens", type=int, default=8, help="K latent tokens per image (8)")
    tr.add_argument("--codebook-size", type=int, default=256, help="codes (256)")
    tr.add_argument("--generator", choices=("maskgit", "ar"), default="maskgit")
    tr.add_argument("--tok-steps", type=int, default=600, help="tokenizer steps (600)")
    tr.add_argument("--gen-steps", type=int, default=500, help="generator steps (500)")
    tr.add_argument("--width", type=int, default=64, help="tokenizer and generator width (64)")
    sa.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (1.0)")
    sa.add_argument("--steps", type=int, default=8, help="MaskGIT decoding steps (8)")
    return p


def run(args: argparse.Namespace) -> int:
    device = cli_device(args)
    if args.titok_command == "train":
        return _train(args, device)
    return _sample(args, device)


def _train(args: argparse.Namespace, device: str) -> int:
    import torch

    from paperlab.core.data.image_io import load_image_folder, save_grid_png
    from paperlab.core.data.images import make_shapes
    from paperlab.core.files import write_text_atomic
    from paperlab.papers.titok.ar import ARGenerator
    from paperlab.papers.titok.generation import sample_images, tokenize, train_generator
    from paperlab.papers.titok.maskgit import MaskGIT
    from paperlab.papers.titok.tokenizer import TiTokTokenizer, train_tokenizer

    require_positive(
        args, "size", "patch_size", "tokens", "codebook_size", "tok_steps", "gen_steps"
    )
    require_positive(args, "batch_size", "width")
    if args.size % args.patch_size:
        raise UserError(f"--size {args.size} must be divisible by --patch-size {args.patch_size}")
    if args.width % 4:
        raise UserError(f"--width {args.width} must be divisible by 4 (4 attention heads)")
    if (args.images is None) == (not args.demo):
        raise UserError("train: give an image folder or --demo (not both)")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out: {args.out} exists and is not a folder")
    if args.demo:
        data = make_shapes(600, size=args.size, seed=args.seed)
    else:
        data = load_image_folder(args.images, size=args.size)
    print(f"{len(data)} images, {data.num_classes} classes, {args.size} px, device {device}")
    torch.manual_seed(args.seed)
    tokenizer = TiTokTokenizer(
        image_size=args.size,
        channels=data.channels,
        patch_size=args.patch_size,
        num_latent_tokens=args.tokens,
        width=args.width,
        codebook_size=args.codebook_size,
    )
    progress = not args.no_progress
    tok_hist = train_tokenizer(
        tokenizer,
        data.images,
        steps=args.tok_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=progress,
        device=device,
    )
    tokens = tokenize(tokenizer, data.images)
    kw = dict(codebook_size=args.codebook_size, seq_len=args.tokens, num_classes=data.num_classes)
    if args.generator == "maskgit":
        generator: MaskGIT | ARGenerator = MaskGIT(**kw, dim=args.width)
    else:
        generator = ARGenerator(**kw, dim=args.width)
    gen_hist = train_generator(
        generator,
        tokens,
        data.labels,
        steps=args.gen_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=progress,
        device=device,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(args.out / "tokenizer")
    generator.save_pretrained(args.out)
    meta = {
        "classes": list(data.class_names),
        "size": args.size,
        "generator": args.generator,
        "tokenizer_loss": tok_hist["loss"][-1],
        "generator_loss": gen_hist["loss"][-1],
    }
    write_text_atomic(args.out / "classes.json", json.dumps(meta, indent=2) + "\n")
    labels = torch.arange(data.num_classes).repeat_interleave(4)
    sampling: dict[str, Any] = dict(cfg_scale=2.0)
    if args.generator == "maskgit":
        sampling["num_steps"] = min(8, args.tokens)
    images = sample_images(generator, tokenizer, labels, seed=args.seed, **sampling)
    save_grid_png(images, args.out / "samples.png", nrow=4)
    print(f"wrote {args.out}/ (tokenizer/, generator.safetensors, classes.json, samples.png)")
    return 0


def _sample(args: argparse.Namespace, device: str) -> int:
    import torch

    from paperlab.core.data.image_io import class_index, save_grid_png
    from paperlab.papers.titok.ar import ARGenerator
    from paperlab.papers.titok.generation import sample_images
    from paperlab.papers.titok.maskgit import MaskGIT
    from paperlab.papers.titok.tokenizer import TiTokTokenizer

    require_positive(args, "per_class", "steps")
    if args.temperature <= 0:
        raise UserError(f"--temperature must be > 0, got {args.temperature}")
    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out: {args.out} must end in .png")
    meta_file = args.checkpoint / "classes.json"
    if not meta_file.is_file():
        raise UserError(f"checkpoint: {args.checkpoint} has no classes.json (not from `train`)")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    classes = meta["classes"]
    cls = MaskGIT if meta.get("generator", "maskgit") == "maskgit" else ARGenerator
    try:
        tokenizer = TiTokTokenizer.from_pretrained(args.checkpoint / "tokenizer", device=device)
        generator = cls.from_pretrained(args.checkpoint, device=device)
    except (OSError, ValueError) as e:
        raise UserError(f"checkpoint: {e}") from None
    wanted = [class_index(c, classes) for c in args.classes] or list(range(len(classes)))
    labels = torch.tensor(wanted).repeat_interleave(args.per_class)
    sampling: dict[str, Any] = dict(cfg_scale=args.cfg_scale, temperature=args.temperature)
    if cls is MaskGIT:
        if args.steps > generator.seq_len:
            raise UserError(
                f"--steps {args.steps}: at most the number of tokens ({generator.seq_len})"
            )
        sampling["num_steps"] = args.steps
    images = sample_images(generator, tokenizer, labels, seed=args.seed, **sampling)
    save_grid_png(images, args.out, nrow=args.per_class)
    print(f"wrote {args.out}: {len(wanted)} class(es) x {args.per_class}")
    return 0
