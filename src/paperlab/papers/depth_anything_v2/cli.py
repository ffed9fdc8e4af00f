"""`paperlab depth`: photos -> depth pictures, and the teacher -> pseudo-label -> student pipeline
(Depth Anything V2, Yang et al. 2024, arXiv 2406.09414).

    paperlab depth photo.jpg more/ --checkpoint student.safetensors --out depth/
    paperlab depth convert depth_anything_v2_vits.pth --out vits.safetensors
    paperlab depth train-teacher --work runs/da2      # then pseudo-label, then train-student

The maps are relative **disparity** (inverse depth up to scale and shift): bright/warm = near.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError

STAGES = ("train-teacher", "pseudo-label", "train-student")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}

DESCRIPTION = """\
Depth Anything V2 (arXiv 2406.09414). With image paths: predict the relative disparity (inverse
depth up to scale and shift; larger = closer) of each image and write DIR/NAME_depth.png (colour
map, near = warm) and DIR/NAME_disparity16.png (16-bit greyscale, disparity scaled to 0..65535
per image). A folder stands for the images in it. With a stage name: run that stage of the
training pipeline in --work (resumable: re-run the same command after a kill)."""

EPILOG = """\
forms:
  paperlab depth IMAGE|FOLDER ... [--checkpoint FILE] [--out DIR]   predict
  paperlab depth convert OFFICIAL.pth --out FILE.safetensors          convert an official checkpoint
  paperlab depth train-teacher|pseudo-label|train-student [--work DIR]

examples:
  paperlab depth train-teacher --work da2 --teacher-steps 300 --n-synthetic 500
  paperlab depth pseudo-label --work da2 --n-real 500
  paperlab depth train-student --work da2 --student-steps 300
  paperlab depth photo.jpg --checkpoint da2/student.safetensors --out depth/
  paperlab depth convert depth_anything_v2_vits.pth --out vits.safetensors
  paperlab depth photo.jpg --checkpoint vits.safetensors --input-size 518 --out depth/
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `depth` to the top-level subparsers."""
    p = subparsers.add_parser(
        "depth",
        help="Depth Anything V2: photo -> relative depth; teacher/pseudo-label/student pipeline",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "items",
        nargs="+",
        metavar="IMAGE|STAGE",
        help="images or folders to predict; or convert SRC; or one of " + ", ".join(STAGES),
    )
    p.add_argument("--out", type=Path, help="predict: output folder (./depth); convert: file")
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="predict: a paperlab depth checkpoint (default WORK/student.safetensors)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        help="predict: the shorter side fed to the model (default: the size it was trained at)",
    )
    p.add_argument("--work", type=Path, default=Path("depth-anything-v2"), help="pipeline folder")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from dataclasses import fields

    from paperlab.papers.depth_anything_v2.pipeline import PipelineConfig

    for f in fields(PipelineConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default)
        p.add_argument(flag, type=kind, default=None, help=f"pipeline: {f.name} ({f.default})")
    return p


def run(args: argparse.Namespace) -> int:
    first = args.items[0]
    try:
        if first in STAGES:
            if len(args.items) > 1:
                raise UserError(f"{first} takes no positional arguments (got {args.items[1:]})")
            return _stage(first, args)
        if first == "convert":
            return _convert(args)
        return _predict(args)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None


def _device(args: argparse.Namespace) -> str:
    from paperlab.core.device import resolve_device

    return resolve_device(args.device)


def _pipeline_config(args: argparse.Namespace) -> Any:
    import json

    from paperlab.papers.depth_anything_v2.pipeline import PipelineConfig

    saved = args.work / "pipeline.json"
    values = json.loads(saved.read_text()) if saved.is_file() else {}
    for name in PipelineConfig.__dataclass_fields__:
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    return PipelineConfig(**values)


def _stage(stage: str, args: argparse.Namespace) -> int:
    from paperlab.papers.depth_anything_v2 import pipeline

    cfg = _pipeline_config(args)
    run_stage = {
        "train-teacher": pipeline.run_train_teacher,
        "pseudo-label": pipeline.run_pseudo_label,
        "train-student": pipeline.run_train_student,
    }[stage]
    path = run_stage(args.work, cfg, device=_device(args), progress=not args.no_progress)
    print(f"{stage}: wrote {path}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from paperlab.papers.depth_anything_v2.official import convert_checkpoint

    if len(args.items) != 2 or args.out is None:
        raise UserError("convert: give one official checkpoint and --out FILE.safetensors")
    out = args.out if args.out.suffix == ".safetensors" else args.out / "model.safetensors"
    path = convert_checkpoint(args.items[1], out)
    print(f"convert: wrote {path}")
    return 0


def image_paths(items: list[str]) -> list[Path]:
    """The image files named by ``items`` (a folder: its image files, sorted)."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UserError(f"{path}: a folder with no images ({', '.join(IMAGE_SUFFIXES)})")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise UserError(f"{path}: no such image or folder")
    return paths


def _predict(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm

    from paperlab.papers.depth_anything_v2.pipeline import load_depth_model
    from paperlab.papers.depth_anything_v2.transform import infer_disparity

    paths = image_paths(args.items)
    checkpoint = args.checkpoint or args.work / "student.safetensors"
    if not checkpoint.is_file():
        raise UserError(
            f"{checkpoint}: no checkpoint; train one (paperlab depth train-teacher, pseudo-label, "
            "train-student) or convert an official one (paperlab depth convert)"
        )
    device = _device(args)
    try:
        model = load_depth_model(checkpoint, device=device)
    except (ValueError, KeyError) as e:
        raise UserError(f"{checkpoint}: not a paperlab depth checkpoint ({e})") from None
    size = args.input_size or model.config.image_size
    out_dir = args.out or Path("depth")
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in tqdm(paths, desc="depth", unit="image", disable=args.no_progress, leave=False):
        try:
            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise UserError(f"{path}: not a readable image ({type(e).__name__})") from None
        disparity = infer_disparity(model, image, input_size=size, device=device)
        write_depth_pngs(disparity, out_dir, path.stem)
    print(f"depth: {len(paths)} image(s) -> {out_dir}/ (NAME_depth.png, NAME_disparity16.png)")
    return 0


def write_depth_pngs(disparity: Any, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """NAME_depth.png (Spectral_r colour map, near = warm, as the official demo) and
    NAME_disparity16.png (16-bit, per-image min-max scaled). Both written atomically."""
    import os

    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    d = np.asarray(disparity, np.float64)
    lo, hi = float(d.min()), float(d.max())
    unit = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
    colour = (colormaps["Spectral_r"](unit)[..., :3] * 255).round().astype(np.uint8)
    sixteen = (unit * 65535).round().astype(np.uint16)
    written = []
    for name, image in (
        (f"{stem}_depth.png", Image.fromarray(colour)),
        (f"{stem}_disparity16.png", Image.fromarray(sixteen)),
    ):
        target = out_dir / name
        tmp = out_dir / f".{name}.tmp"
        image.save(tmp, format="PNG")
        os.replace(tmp, target)
        written.append(target)
    return written[0], written[1]
