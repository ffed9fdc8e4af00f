"""`paperlab recap scenes|train-captioner|caption|train-clip|eval`.

paperlab recap scenes demo --n 200                         # a folder of scenes + web captions
paperlab recap train-captioner demo --out captioner        # the image-LLM on detailed captions
paperlab recap caption demo --captioner captioner --out recap    # records, resumable
paperlab recap train-clip recap --p 0.8 --out clip         # CLIP on the mix
paperlab recap eval clip                                   # R@1 short/long, zero-shot
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from paperlab.claims import UserError
from paperlab.cli_args import add_run_args, cli_device, require_positive

EPILOG = """examples:
  paperlab recap scenes demo --n 200 --mismatch 0.25
  paperlab recap train-captioner demo --out captioner --steps 600
  paperlab recap caption demo --captioner captioner --out recap --batch-size 64
  paperlab recap caption shard.tar --captioner captioner --out recap --format parquet
  paperlab recap caption manifest.parquet --captioner captioner --out recap --engine ray
  paperlab recap train-clip recap --p 0.8 --out clip --steps 500
  paperlab recap eval clip --scenes 500
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "recap",
        help="Recap-DataComp: recaption images with an image-LLM; train and evaluate CLIP",
        description="What If We Recaption Billions of Web Images with LLaMA-3? (arXiv "
        "2406.08478): a resumable recaptioning pipeline (embedded or Ray Data) with the core "
        "image-LLM as captioner, and a tiny CLIP trained on a mix of original captions and "
        "recaptions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(
        dest="recap_command",
        metavar="scenes|train-captioner|caption|train-clip|eval",
        required=True,
    )
    s = cmds.add_parser(
        "scenes",
        help="write procedural scenes as PNGs with web captions (<name>.txt) and truths",
        description="A folder of N scenes: <key>.png, <key>.txt (the noisy web caption) and "
        "<key>.json (the detailed true caption), ready for train-captioner and caption.",
    )
    s.add_argument("out", type=Path, help="folder to write (created)")
    s.add_argument("--n", type=int, default=200, help="number of scenes (200)")
    s.add_argument(
        "--mismatch", type=float, default=0.25, help="share of web captions of another scene"
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the scenes (0)")

    t = cmds.add_parser(
        "train-captioner",
        help="train the core image-LLM on a scenes folder's detailed captions",
        description="Trains an ImageLLM on (image, prompt, detailed caption) from a folder "
        "written by `recap scenes` and saves it (safetensors) to --out.",
    )
    t.add_argument("scenes", type=Path, help="a folder written by `paperlab recap scenes`")
    t.add_argument("--out", type=Path, required=True, help="folder for the captioner")
    t.add_argument("--steps", type=int, default=600, help="optimizer steps (600)")
    t.add_argument(
        "--vision-steps",
        type=int,
        default=1500,
        help="steps of the first stage, the encoder trained on the objects the captions state, "
        "then frozen while the decoder learns to caption, as `reproduce recap` does "
        "(1500; 0: one stage, the encoder trained with the decoder)",
    )
    t.add_argument("--batch-size", type=int, default=32, help="examples per step (32)")
    t.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (3e-3)")
    t.add_argument("--dim", type=int, default=64, help="ViT and decoder width (64)")
    _run_args(t)

    c = cmds.add_parser(
        "caption",
        help="recaption images into shards of url/org_caption/re_caption/key/sha256",
        description="SRC: a folder of images (a <name>.txt beside an image is its original "
        "caption), a WebDataset .tar shard, or a .jsonl/.parquet manifest with columns url "
        "(paths, relative to the manifest) and org_caption (or caption/text). Resumable: "
        "re-run the same command after a kill; only the rest is captioned.",
    )
    c.add_argument("src", type=Path, help="image folder, .tar shard, or .jsonl/.parquet manifest")
    c.add_argument("--captioner", type=Path, required=True, help="a train-captioner folder")
    c.add_argument("--out", type=Path, required=True, help="folder for the shards")
    c.add_argument("--batch-size", type=int, default=64, help="images per batch (64)")
    c.add_argument("--shard-size", type=int, default=1000, help="records per shard (1000)")
    c.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="shard format")
    c.add_argument(
        "--engine",
        choices=("embedded", "ray"),
        default="embedded",
        help="embedded: this process; ray: the same batch function as Ray Data map_batches",
    )
    c.add_argument("--ray-cpus", type=int, default=None, help="CPUs for a local Ray (all)")
    c.add_argument("--max-new-tokens", type=int, default=160, help="bytes per recaption (160)")
    _run_args(c)

    k = cmds.add_parser(
        "train-clip",
        help="train a tiny CLIP on recaption records with a mixing ratio p",
        description="Each step, each sample's text is its org_caption with probability p and "
        "its re_caption otherwise (the paper's mixing; p = 1 is the original data).",
    )
    k.add_argument("records", type=Path, help="a `recap caption` output folder (or one shard)")
    k.add_argument("--p", type=float, default=0.8, help="share of original captions (0.8)")
    k.add_argument("--out", type=Path, required=True, help="folder for the CLIP")
    k.add_argument("--steps", type=int, default=500, help="optimizer steps (500)")
    k.add_argument("--batch-size", type=int, default=64, help="pairs per step (64)")
    k.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (3e-3)")
    k.add_argument("--dim", type=int, default=32, help="width of both towers (32)")
    k.add_argument(
        "--context-length", type=int, default=136, help="text tokens incl. SOT/EOT (136)"
    )
    _run_args(k)

    e = cmds.add_parser(
        "eval",
        help="R@1 with short and long queries, zero-shot accuracy on fresh scenes",
        description="Evaluates a CLIP on N held-out procedural scenes (seeded): retrieval R@1 "
        "with short queries ('a red circle') and long ones (every object), both directions, "
        "and zero-shot '{colour} {shape}' accuracy of the large subject.",
    )
    e.add_argument("clip", type=Path, help="a train-clip folder")
    e.add_argument("--scenes", type=int, default=500, help="held-out scenes (500)")
    _run_args(e)


def _scenes(args: argparse.Namespace) -> int:
    from paperlab.core.data.image_io import save_png
    from paperlab.core.files import write_text_atomic
    from paperlab.papers.recap import scenes as S

    require_positive(args, "n")
    if not 0.0 <= args.mismatch <= 1.0:
        raise UserError(f"--mismatch must be in [0, 1], got {args.mismatch}")
    scenes = S.sample_scenes(args.n, seed=args.seed)
    images = S.render_scenes(scenes, seed=args.seed)
    web = S.web_captions(scenes, mismatch=args.mismatch, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (scene, image, text) in enumerate(zip(scenes, images, web, strict=True)):
        save_png(image, args.out / f"{i:06d}.png")
        write_text_atomic(args.out / f"{i:06d}.txt", text)
        truth = {"long_caption": S.long_caption(scene), "short_query": S.short_query(scene)}
        write_text_atomic(args.out / f"{i:06d}.json", json.dumps(truth))
    print(f"{args.n} scenes in {args.out} (<key>.png, web caption <key>.txt, truth <key>.json)")
    return 0


def _train_and_save(
    args: argparse.Namespace, model: Any, fit: Callable[..., Any], what: str
) -> int:
    """The train-captioner / train-clip tail: ``fit`` for ``--steps`` batches of
    ``--batch-size``, save ``model`` to ``--out`` (safetensors), print the final loss."""
    history = fit(steps=args.steps, batch_size=args.batch_size, progress=not args.no_progress)
    path = model.save_pretrained(args.out)
    print(f"{what}: final loss {history['loss'][-1]:.3f}; {path}")
    return 0


def _train_captioner(args: argparse.Namespace, device: str) -> int:
    import torch

    from paperlab.core.data.image_io import image_files, read_image
    from paperlab.core.imagellm import ImageLLM, ImageLLMConfig, train_image_llm
    from paperlab.papers.recap import scenes as S
    from paperlab.papers.recap.mix import PROMPT

    require_positive(args, "steps", "batch_size", "dim")
    if args.dim % 8:
        raise UserError(f"--dim must be a multiple of 8, got {args.dim}")
    if args.vision_steps < 0:
        raise UserError(f"--vision-steps must be >= 0, got {args.vision_steps}")
    examples, scenes = [], []
    for f in image_files(args.scenes, arg="scenes"):
        truth = f.with_suffix(".json")
        if truth.is_file():
            caption = json.loads(truth.read_text())["long_caption"]
            examples.append((read_image(f, size=S.IMAGE_SIZE), PROMPT, caption))
            objects = sorted(S.parse_caption(caption), key=lambda o: o.cell)
            scenes.append(S.Scene(tuple(objects)))
    if not examples:
        raise UserError(f"scenes: {args.scenes} has no <key>.png with a <key>.json truth")
    torch.manual_seed(args.seed)
    cfg = ImageLLMConfig(
        image_size=S.IMAGE_SIZE,
        patch_size=16,  # one visual token per cell of a scene
        vit_dim=args.dim,
        dim=args.dim,
        n_layers=2,
        n_heads=4,
        max_text_len=len(PROMPT) + 3 + max(S.MAX_CAPTION_BYTES, 160),
    )
    model = ImageLLM(cfg)
    if args.vision_steps:
        from paperlab.papers.recap.vision import cell_labels, pretrain_vision

        images = torch.stack([image for image, _, _ in examples])
        history = pretrain_vision(
            model,
            images,
            cell_labels(scenes),
            steps=args.vision_steps,
            batch_size=64,
            lr=args.lr,
            seed=args.seed,
            device=device,
            progress=not args.no_progress,
        )
        print(f"encoder: per-cell accuracy {history['cell_acc'][-1]:.2f} (training batches)")
    fit = partial(
        train_image_llm,
        model,
        examples,
        lr=args.lr,
        seed=args.seed,
        device=device,
        freeze_vision=args.vision_steps > 0,  # LLaVA-1.5 keeps its pre-trained encoder frozen
    )
    return _train_and_save(args, model, fit, f"captioner: {len(examples)} examples")


def _caption(args: argparse.Namespace, device: str) -> int:
    from paperlab.core.imagellm import ImageLLM
    from paperlab.papers.recap.mix import ImageLLMCaptioner
    from paperlab.papers.recap.pipeline import caption_source

    require_positive(args, "batch_size", "shard_size", "max_new_tokens")
    try:
        model = ImageLLM.from_pretrained(args.captioner, device=device)
    except FileNotFoundError as e:
        raise UserError(f"--captioner: {e}") from None
    cap = ImageLLMCaptioner(model, max_new_tokens=args.max_new_tokens)
    summary = caption_source(
        args.src,
        args.out,
        cap,
        image_size=cap.image_size,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        fmt=args.format,
        engine=args.engine,
        num_cpus=args.ray_cpus,
        progress=not args.no_progress,
    )
    print(
        f"{summary.captioned} of {summary.images} images captioned ({summary.new} this run, "
        f"{summary.images_per_second:.1f} img/s); {len(summary.unreadable)} unreadable; "
        f"shards and summary.json in {args.out}"
    )
    for bad in summary.unreadable[:5]:
        print(f"  unreadable: {bad['url']}: {bad['error']}", file=sys.stderr)
    return 0


def _train_clip(args: argparse.Namespace, device: str) -> int:
    import torch

    from paperlab.core.clip import CLIP, CLIPConfig, train_clip
    from paperlab.core.data.image_io import read_image
    from paperlab.papers.recap import scenes as S
    from paperlab.papers.recap.mix import check_p, mixed_captions
    from paperlab.papers.recap.pipeline import read_records

    try:
        p = check_p(args.p)
    except ValueError as e:
        raise UserError(f"--p: {e}") from None
    require_positive(args, "steps", "batch_size", "dim", "context_length")
    records = read_records(args.records)
    images = torch.stack([read_image(r["url"], size=S.IMAGE_SIZE) for r in records])
    if not 2 <= args.batch_size <= len(records):
        raise UserError(f"--batch-size must be in 2..{len(records)} (the records)")
    torch.manual_seed(args.seed)
    heads = 2 if args.dim % 2 == 0 else 1
    cfg = CLIPConfig(
        image_size=S.IMAGE_SIZE,
        patch_size=8,
        vision_dim=args.dim,
        vision_heads=heads,
        text_dim=args.dim,
        text_heads=heads,
        embed_dim=args.dim,
        context_length=args.context_length,
        causal=False,
    )
    model = CLIP(cfg)
    texts = mixed_captions(
        [r["org_caption"] for r in records], [r["re_caption"] for r in records], p=p, seed=args.seed
    )
    fit = partial(train_clip, model, images, texts, lr=args.lr, seed=args.seed, device=device)
    return _train_and_save(args, model, fit, f"CLIP at p={p:g} on {len(records)} pairs")


def _eval(args: argparse.Namespace, device: str) -> int:
    from paperlab.core.clip import CLIP
    from paperlab.papers.recap import scenes as S
    from paperlab.papers.recap.experiments import evaluate_clip

    require_positive(args, "scenes")
    try:
        model = CLIP.from_pretrained(args.clip, device=device)
    except FileNotFoundError as e:
        raise UserError(f"clip: {e}") from None
    test = S.sample_scenes(args.scenes, seed=args.seed + 20_000)
    w = {"test": test, "test_images": S.render_scenes(test, seed=args.seed + 20_000)}
    r = evaluate_clip(model, w)
    print(
        f"R@1 short queries {r['short_r1']:.3f}, long queries {r['long_r1']:.3f}, mean "
        f"{r['avg_r1']:.3f}; zero-shot subject accuracy {r['zero_shot']:.3f} "
        f"({args.scenes} scenes)"
    )
    return 0


def _run_args(p: argparse.ArgumentParser) -> None:
    add_run_args(p, seed_help="seed (0)")


def run(args: argparse.Namespace) -> int:
    device = cli_device(args) if hasattr(args, "device") else "cpu"
    commands = {
        "train-captioner": _train_captioner,
        "caption": _caption,
        "train-clip": _train_clip,
        "eval": _eval,
    }
    try:
        if args.recap_command == "scenes":
            return _scenes(args)
        return commands[args.recap_command](args, device)
    except ValueError as e:  # a malformed checkpoint or argument: one line
        raise UserError(str(e)) from None
