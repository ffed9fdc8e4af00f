"""Arguments and checks the paper commands share (``paperlab <paper> ...``).

add_run_args(parser)                 # --seed, --device, --no-progress
require_positive(args, "steps")      # "--steps must be >= 1, got 0" (a UserError)
device = cli_device(args)            # --device resolved, or a one-line UserError
"""

from __future__ import annotations

import argparse
from pathlib import Path

from paperlab.core.errors import UserError


def add_run_args(p: argparse.ArgumentParser, *, seed_help: str = "random seed (0)") -> None:
    """``--seed``, ``--device`` and ``--no-progress``, as every training command has them."""
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def require_positive(args: argparse.Namespace, *names: str) -> None:
    """Each named integer option must be >= 1 (one UserError naming the flag)."""
    for name in names:
        value = getattr(args, name)
        if value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def cli_device(args: argparse.Namespace) -> str:
    """``args.device`` resolved (auto -> cuda, mps or cpu); a bad name is one UserError."""
    from paperlab.core.device import resolve_device

    try:
        return resolve_device(args.device)
    except ValueError as e:
        raise UserError(f"--device: {e}") from None


def add_image_model_commands(
    parser: argparse.ArgumentParser, name: str, *, epilog: str = ""
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """``<name> train IMAGES|--demo --out DIR`` and ``<name> sample DIR --out PNG`` with the
    arguments both image-generation commands share; returns (train, sample) for the rest."""
    fmt = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest=f"{name}_command", metavar="train|sample", required=True)
    tr = sub.add_parser(
        "train", help="image folder -> checkpoint folder", epilog=epilog, formatter_class=fmt
    )
    tr.add_argument("images", nargs="?", type=Path, help="image folder (sub-folders = classes)")
    tr.add_argument("--demo", action="store_true", help="procedural shapes instead of a folder")
    tr.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    tr.add_argument("--size", type=int, default=16, help="resize images to SIZE px (16)")
    tr.add_argument("--batch-size", type=int, default=32, help="batch size (32)")
    add_run_args(tr)
    sa = sub.add_parser(
        "sample", help="checkpoint folder -> PNG grid", epilog=epilog, formatter_class=fmt
    )
    sa.add_argument("checkpoint", type=Path, help=f"a folder written by `{name} train`")
    sa.add_argument("--out", type=Path, required=True, help="PNG file to write")
    sa.add_argument(
        "--class",
        dest="classes",
        action="append",
        default=[],
        metavar="NAME|INDEX",
        help="class to draw (repeatable; default: every class)",
    )
    sa.add_argument("--per-class", type=int, default=8, help="images per class (8)")
    sa.add_argument("--cfg-scale", type=float, default=2.0, help="guidance scale (2.0)")
    add_run_args(sa)
    return tr, sa
