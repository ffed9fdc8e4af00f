"""`paperlab powerinfer2 train | convert | plan | generate`.

paperlab powerinfer2 train runs/relu-model              # a ReGLU decoder on the stdlib corpus
paperlab powerinfer2 convert MODEL_DIR OUT_DIR          # Llama checkpoint -> engine folder
paperlab powerinfer2 plan OUT_DIR --memory-budget 25%   # hot/cold plan -> OUT_DIR/plan.json
paperlab powerinfer2 generate OUT_DIR --prompt "def " --memory-budget 25% --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from paperlab.claims import UserError

EPILOG = """examples:
  paperlab powerinfer2 train runs/relu-model                   # ~1 min on 2 cores
  paperlab powerinfer2 convert runs/relu-model runs/pi2        # profile, predictors, bundles
  paperlab powerinfer2 plan runs/pi2 --memory-budget 25%       # prints + writes plan.json
  paperlab powerinfer2 generate runs/pi2 --prompt "import os" --memory-budget 25% \\
      --max-new-tokens 64 --stats
  paperlab powerinfer2 generate runs/pi2 --prompt "def " --memory-budget 48MB --stats

MODEL_DIR is a folder written by Llama.save_pretrained with hidden_act="relu" (e.g. the model
of `paperlab.papers.powerinfer2.train_relu_model`). --memory-budget counts FFN weight bytes:
a share ("25%", "0.25") or bytes ("48MB", "50000000").
"""


def add_parser(sub: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "powerinfer2",
        help="PowerInfer-2: serve a ReLU model from disk under a memory budget",
        description="PowerInfer-2 (arXiv 2406.06282): convert a ReLU Llama into an engine "
        "folder (neuron bundles on disk, activation profile, predictors), plan the hot "
        "neurons for a memory budget, and generate with FFN neurons read from disk on demand.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    psub = p.add_subparsers(dest="powerinfer2_command", metavar="COMMAND", required=True)
    train = psub.add_parser(
        "train",
        help="train a ReGLU decoder here -> a Llama checkpoint folder for convert",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    train.add_argument("model_dir", type=Path, help="the checkpoint folder to write")
    train.add_argument("--scale", default="default", help="tiny | default | full (default)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-progress", action="store_true")

    conv = psub.add_parser(
        "convert", help="Llama checkpoint -> engine folder", epilog=EPILOG, formatter_class=fmt
    )
    conv.add_argument("model_dir", type=Path, help="a Llama.save_pretrained folder (ReLU FFN)")
    conv.add_argument("out_dir", type=Path, help="the engine folder to write")
    conv.add_argument("--profile-batches", type=int, default=16, help="batches profiled (16)")
    conv.add_argument("--predictor-rank", type=int, default=64, help="predictor rank (64)")
    conv.add_argument("--predictor-steps", type=int, default=300, help="training steps (300)")
    conv.add_argument("--threshold", type=float, default=0.5, help="predictor threshold (0.5)")
    conv.add_argument("--seed", type=int, default=0)
    conv.add_argument("--no-progress", action="store_true")

    plan = psub.add_parser(
        "plan",
        help="hot/cold plan for a budget -> OUT_DIR/plan.json",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    plan.add_argument("out_dir", type=Path, help="an engine folder (from convert)")
    plan.add_argument("--memory-budget", default="25%", help="FFN bytes held: 25%%, 48MB (25%%)")
    plan.add_argument("--hot-share", type=float, default=0.5, help="share pinned hot (0.5)")

    gen = psub.add_parser(
        "generate", help="decode with the engine", epilog=EPILOG, formatter_class=fmt
    )
    gen.add_argument("out_dir", type=Path, help="an engine folder (from convert)")
    gen.add_argument("--prompt", required=True, help="prompt text (bytes)")
    gen.add_argument("--memory-budget", default="25%", help="FFN bytes held: 25%%, 48MB (25%%)")
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (0)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--stats", action="store_true", help="print tokens/s, bytes, hit rate")


def run(args: argparse.Namespace) -> int:
    command = {"train": _train, "convert": _convert, "plan": _plan, "generate": _generate}
    try:
        return command[args.powerinfer2_command](args)
    except (FileNotFoundError, ValueError) as e:  # incl. CorruptWeightsError: one line
        raise UserError(str(e).splitlines()[0]) from None


def _train(args: argparse.Namespace) -> int:
    from paperlab.papers.powerinfer2.sparse_model import ReluModelConfig, fit_relu_model

    if (args.model_dir / "model.safetensors").exists():
        raise UserError(f"{args.model_dir}: already holds a checkpoint; choose a new folder")
    cfg = ReluModelConfig.preset(args.scale)
    model, info = fit_relu_model(cfg, seed=args.seed, progress=not args.no_progress)
    path = model.save_pretrained(args.model_dir)
    print(
        f"ReGLU decoder ({model.num_params():,} parameters), val loss "
        f"{info['val_loss']:.3f} nats/byte, {info['seconds']:.0f} s -> {path}"
    )
    return 0


def _convert(args: argparse.Namespace) -> int:
    from paperlab.core.device import torch_threads
    from paperlab.papers.powerinfer2.engine import ConvertConfig, convert

    if not (args.model_dir / "model.safetensors").is_file():
        raise UserError(
            f"{args.model_dir}: no model.safetensors (a Llama.save_pretrained folder is expected)"
        )
    cfg = ConvertConfig(
        profile_batches=args.profile_batches,
        predictor_rank=args.predictor_rank,
        predictor_steps=args.predictor_steps,
        threshold=args.threshold,
        seed=args.seed,
    )
    with torch_threads(1):
        out = convert(args.model_dir, args.out_dir, config=cfg, progress=not args.no_progress)
    meta = json.loads((out / "engine.json").read_text())
    recall = [round(m["recall"], 3) for m in meta["predictor_metrics"]]
    sparsity = [round(s, 3) for s in meta["sparsity"]]
    share = [round(s, 3) for s in meta["share_covering_80"]]
    print(f"engine folder -> {out}")
    print(
        f"sparsity per layer {sparsity}; share of neurons covering 80% of activations {share}; "
        f"predictor recall {recall}"
    )
    return 0


def _plan(args: argparse.Namespace) -> int:
    from paperlab.papers.powerinfer2.cache import parse_budget
    from paperlab.papers.powerinfer2.layout import FILES, BundleFile
    from paperlab.papers.powerinfer2.planner import plan_hot_neurons
    from paperlab.papers.powerinfer2.profile import ActivationProfile

    if not (args.out_dir / FILES["config"]).is_file():
        raise UserError(
            f"{args.out_dir}: not an engine folder; run `paperlab powerinfer2 "
            "convert MODEL_DIR OUT_DIR` first"
        )
    with BundleFile(args.out_dir / FILES["bundles"]) as bundles:
        budget = parse_budget(args.memory_budget, bundles.ffn_bytes)
        ffn_bytes, bundle_bytes = bundles.ffn_bytes, bundles.bundle_bytes
    profile = ActivationProfile.load(args.out_dir / FILES["profile"])
    plan = plan_hot_neurons(
        profile,
        budget_bytes=min(budget, ffn_bytes),
        bundle_bytes=bundle_bytes,
        hot_share=args.hot_share,
    )
    doc = dict(
        memory_budget=str(args.memory_budget),
        budget_bytes=budget,
        ffn_bytes=ffn_bytes,
        bundle_bytes=bundle_bytes,
        hot_share=args.hot_share,
        **plan.to_json(),
    )
    path = args.out_dir / "plan.json"
    tmp = path.with_name(f".plan.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc) + "\n")
    tmp.replace(path)  # all or nothing
    print(f"budget {budget:,} B = {budget / ffn_bytes:.1%} of the FFN ({ffn_bytes:,} B)")
    print(f"hot: {plan.n_hot} neurons, {plan.hot_bytes:,} B; cold LRU: {plan.cold_cache_bytes:,} B")
    for layer, (ids, cov) in enumerate(zip(plan.hot, plan.covered, strict=True)):
        print(f"  layer {layer}: {len(ids)} hot neurons cover {cov:.1%} of activations")
    print(f"plan -> {path}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from paperlab.papers.powerinfer2.engine import PowerInferEngine

    if args.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be >= 1")
    with PowerInferEngine.from_pretrained(args.out_dir, memory_budget=args.memory_budget) as e:
        text = e.generate(
            args.prompt,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            seed=args.seed,
        )
        stats = dict(e.stats)
    print(args.prompt + text)
    if args.stats:
        s = stats
        print(
            f"\n-- decode {s['tokens_per_s']:.1f} tokens/s; read {s['bytes_read_per_token']:,.0f}"
            f" B/token ({s['reads_per_token']:.1f} reads; kernel "
            f"{s['block_read_bytes_per_token']:,.0f} B); neurons resident when active "
            f"{s['hit_rate']:.1%} (cold cache {s['cold_hit_rate']:.1%}); I/O wait "
            f"{s['io_wait_share']:.1%} of decode time; active {s['active_share']:.1%}"
        )
        print(
            f"-- memory: budget {s['budget_bytes']:,} B of {s['ffn_bytes']:,} B FFN; peak "
            f"FFN resident {s['peak_resident_ffn_bytes']:,} B (hot {s['hot_bytes']:,} B); "
            f"non-FFN weights {s['non_ffn_bytes']:,} B + predictors "
            f"{s['predictor_bytes']:,} B resident"
        )
    return 0
