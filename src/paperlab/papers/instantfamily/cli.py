"""`paperlab instantfamily`: generate given people in given boxes with masked attention.

paperlab instantfamily faces --out ids --count 2                     # demo identity images
paperlab instantfamily train --out model                             # encoder + generator
paperlab instantfamily generate --model model --ids ids/id0.png,ids/id1.png --out grid.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from paperlab.cli_args import add_run_args, cli_device, require_positive
from paperlab.core.errors import UserError

ENCODER_KIND = "instantfamily-encoder"
GENERATOR_KIND = "instantfamily-generator"
EPILOG = """examples:
  paperlab instantfamily faces --out ids --count 3 --seed 1
  paperlab instantfamily train --out model --steps 300
  paperlab instantfamily generate --model model --ids ids/id0.png,ids/id1.png \\
      --boxes "2,8,9;14,8,9" --colour green --out grid.png
  paperlab instantfamily generate --model model --ids ids/id0.png,ids/id1.png,ids/id2.png \\
      --out grid3.png                     # 3 people: the 2x2 layout's first three boxes

An identity image is a 16 x 16 PNG of one face (`faces` writes procedural ones). A box is
"x,y,side" in canvas pixels; boxes are separated by ";", must lie inside the canvas, and
their mask regions (each box grown by 25%) must not overlap. One identity per box, in order.
The model folder holds the identity encoder and the generator (`train` writes it; the
generator was trained on 1-2 people and takes up to 4).
"""


def add_parser(sub: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "instantfamily",
        help="InstantFamily: generate several given identities in given boxes (masked attention)",
        description="InstantFamily (arXiv 2404.19427): text + per-person identity tokens, masked "
        "cross-attention so that each face region sees only its own person.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    sub2 = p.add_subparsers(
        dest="instantfamily_command", metavar="faces|train|generate", required=True
    )
    fa = sub2.add_parser(
        "faces",
        help="write procedural identity images (16 px PNGs)",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    fa.add_argument("--out", type=Path, required=True, help="folder for id0.png, id1.png, ...")
    fa.add_argument("--count", type=int, default=2, help="how many identities (2)")
    fa.add_argument("--seed", type=int, default=0, help="seed of the identities (0)")

    tr = sub2.add_parser(
        "train",
        help="train the identity encoder and the generator",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    tr.add_argument("--out", type=Path, required=True, help="model folder to write")
    tr.add_argument("--steps", type=int, default=300, help="generator training steps (300)")
    tr.add_argument("--encoder-steps", type=int, default=400, help="identity encoder steps (400)")
    tr.add_argument(
        "--pool", type=int, default=1000, help="training canvases per people count (1000)"
    )
    tr.add_argument("--batch-size", type=int, default=16, help="batch size (16)")
    tr.add_argument(
        "--face-weight",
        type=float,
        default=3.0,
        help="extra loss weight of the face regions (3.0; 0 = the plain diffusion loss)",
    )
    tr.add_argument("--size", type=int, default=24, help="canvas side in px (24)")
    tr.add_argument(
        "--mask",
        choices=("multiply", "neg_inf", "none"),
        default="multiply",
        help="masked cross-attention: the paper's M * logits, -inf, or none (multiply)",
    )
    tr.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    add_run_args(tr)

    ge = sub2.add_parser(
        "generate", help="identity images + boxes -> PNG grid", epilog=EPILOG, formatter_class=fmt
    )
    ge.add_argument("--model", type=Path, required=True, help="model folder written by `train`")
    ge.add_argument("--ids", required=True, help="comma-separated identity images (16 x 16 PNG)")
    ge.add_argument("--boxes", help='"x,y,side;x,y,side": one box per identity (default: a layout)')
    ge.add_argument("--colour", default="blue", help="background colour of the prompt (blue)")
    ge.add_argument("--out", type=Path, required=True, help="PNG grid to write")
    ge.add_argument("--samples", type=int, default=4, help="canvases to generate (4)")
    ge.add_argument("--steps", type=int, default=15, help="DDIM steps (15)")
    ge.add_argument(
        "--guidance", type=float, default=2.0, help="classifier-free guidance scale (2)"
    )
    ge.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    add_run_args(ge, seed_help="seed of the noise (0)")


def parse_boxes(text: str, size: int) -> Any:
    """ "x,y,side;..." -> (K, 3) float tensor, checked against the canvas and the margin rule."""
    import torch

    from paperlab.papers.instantfamily.data import check_boxes

    try:
        rows = [[float(v) for v in part.split(",")] for part in text.split(";") if part.strip()]
    except ValueError:
        raise UserError(f"--boxes: {text!r} is not 'x,y,side;x,y,side' numbers") from None
    if not rows or any(len(r) != 3 for r in rows):
        raise UserError(f"--boxes: {text!r}: each box is three numbers x,y,side")
    boxes = torch.tensor(rows)
    try:
        check_boxes(boxes, size, arg="--boxes")
    except ValueError as e:
        raise UserError(str(e)) from None
    return boxes


def read_ids(text: str) -> Any:
    """The identity images (K, 3, 16, 16) in [0, 1]."""
    import torch

    from paperlab.core.data.image_io import read_image
    from paperlab.papers.instantfamily.data import FACE_PX

    paths = [Path(p.strip()) for p in text.split(",") if p.strip()]
    if not paths:
        raise UserError("--ids: give one or more image paths, comma-separated")
    images = []
    for path in paths:
        if not path.is_file():
            raise UserError(f"--ids: {path} does not exist")
        image = read_image(path)
        if image.shape[1:] != (FACE_PX, FACE_PX):
            raise UserError(
                f"--ids: {path} is {image.shape[2]}x{image.shape[1]}; identity images are "
                f"{FACE_PX}x{FACE_PX} (`paperlab instantfamily faces` writes some)"
            )
        images.append(image)
    return torch.stack(images)


# Fields added after the first version (2026-12-06): folders written by it lack them and were
# trained with these values, so they still load as they were trained.
FIRST_VERSION = {"heads": 8, "id_norm": False}


def load_models(folder: Path, device: str) -> tuple[Any, Any]:
    """(encoder, generator) from a folder written by `train`."""
    from paperlab.core.checkpoint import load_model
    from paperlab.papers.instantfamily.identity import EncoderConfig, IdentityEncoder
    from paperlab.papers.instantfamily.model import GeneratorConfig, InstantFamily

    for name in ("encoder.safetensors", "generator.safetensors"):
        if not (folder / name).is_file():
            raise UserError(f"--model: {folder / name} does not exist (run `instantfamily train`)")
    try:
        enc, _ = load_model(
            folder / "encoder.safetensors",
            lambda c: IdentityEncoder(EncoderConfig(**c)),
            kind=ENCODER_KIND,
            map_location=device,
        )
        gen, _ = load_model(
            folder / "generator.safetensors",
            lambda c: InstantFamily(
                GeneratorConfig(**{**FIRST_VERSION, **c, "widths": tuple(c["widths"])})
            ),
            kind=GENERATOR_KIND,
            map_location=device,
        )
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"--model: {folder}: not an instantfamily model ({e})") from None
    return enc.eval(), gen.eval()


def _faces(args: argparse.Namespace) -> None:
    import torch

    from paperlab.core.data.image_io import save_png
    from paperlab.papers.instantfamily.data import id_images, random_identities

    require_positive(args, "count")
    gen = torch.Generator().manual_seed(args.seed)
    images = id_images(random_identities(args.count, gen), gen)
    args.out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        save_png(image, args.out / f"id{i}.png")
    print(f"wrote {args.count} identity images to {args.out}/")


def _train(args: argparse.Namespace) -> None:
    import dataclasses

    from paperlab.core.checkpoint import save_model
    from paperlab.core.device import torch_threads
    from paperlab.papers.instantfamily.identity import EncoderConfig, train_encoder
    from paperlab.papers.instantfamily.model import GeneratorConfig
    from paperlab.papers.instantfamily.pipeline import make_pool, train_generator

    require_positive(args, "steps", "encoder_steps", "pool", "batch_size", "threads")
    if args.size < 16 or args.size % 2:
        raise UserError(f"--size must be an even number >= 16, got {args.size}")
    if args.face_weight < 0:
        raise UserError(f"--face-weight must be >= 0, got {args.face_weight}")
    device = cli_device(args)
    progress = not args.no_progress
    ecfg = EncoderConfig(width=16)
    gcfg = GeneratorConfig(size=args.size, id_local_dim=2 * ecfg.width, mask=args.mask)
    with torch_threads(args.threads):
        enc, _ = train_encoder(
            ecfg,
            num_ids=256,
            steps=args.encoder_steps,
            batch_size=64,
            lr=3e-3,
            seed=args.seed,
            device=device,
            progress=progress,
        )
        pools = [
            make_pool(enc, args.pool, k, size=args.size, seed=args.seed + 10 + k) for k in (1, 2)
        ]
        model, info = train_generator(
            gcfg,
            pools,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=2e-3,
            seed=args.seed,
            face_weight=args.face_weight,
            device=device,
            progress=progress,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    save_model(
        args.out / "encoder.safetensors", enc, kind=ENCODER_KIND, config=dataclasses.asdict(ecfg)
    )
    save_model(
        args.out / "generator.safetensors",
        model,
        kind=GENERATOR_KIND,
        config=dataclasses.asdict(gcfg),
    )
    (args.out / "train.json").write_text(
        json.dumps({**info, "steps": args.steps, "seed": args.seed})
    )
    print(f"wrote {args.out}/ (final loss {info['final_loss']:.4f})")


def _generate(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    from paperlab.core.data.image_io import save_grid_png
    from paperlab.core.device import torch_threads
    from paperlab.papers.instantfamily.data import COLOURS, grid_boxes
    from paperlab.papers.instantfamily.pipeline import generate

    require_positive(args, "samples", "steps", "threads")
    if args.guidance < 1:
        raise UserError(f"--guidance must be >= 1, got {args.guidance}")
    if args.colour not in COLOURS:
        raise UserError(f"--colour: {args.colour!r}: choose one of {', '.join(COLOURS)}")
    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out: {args.out} must end in .png")
    ids = read_ids(args.ids)
    device = cli_device(args)
    encoder, model = load_models(args.model, device)
    size = model.cfg.size
    if args.boxes:
        boxes = parse_boxes(args.boxes, size)
    elif len(ids) <= 4:
        boxes = grid_boxes(len(ids), size)
    else:
        raise UserError(f"--ids: {len(ids)} identities; the default layouts hold 4, give --boxes")
    if len(ids) > len(boxes):
        raise UserError(f"--ids: {len(ids)} identities for {len(boxes)} boxes; one box each")
    if len(ids) < len(boxes):
        raise UserError(f"--boxes: {len(boxes)} boxes for {len(ids)} identities; one identity each")
    n = args.samples
    colour = torch.full((n,), list(COLOURS).index(args.colour))
    with torch_threads(args.threads):
        images = generate(
            model,
            encoder,
            ids.expand(n, *ids.shape),
            boxes.expand(n, *boxes.shape),
            colour,
            steps=args.steps,
            guidance=args.guidance,
            seed=args.seed,
        )
    refs = F.interpolate(ids, size=(size, size), mode="nearest")
    grid = torch.cat([refs, (images.cpu() + 1) / 2])
    save_grid_png(F.interpolate(grid, scale_factor=4, mode="nearest"), args.out, nrow=len(grid))
    print(f"wrote {args.out}: the {len(ids)} identity images, then {n} generated canvases")


def run(args: argparse.Namespace) -> int:
    command = args.instantfamily_command
    {"faces": _faces, "train": _train, "generate": _generate}[command](args)
    return 0
