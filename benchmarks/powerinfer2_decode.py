"""PowerInfer-2 decode under a memory budget, side by side in one process (arXiv 2406.06282).

For each memory budget (a share of the model's FFN weight bytes), on the same ReLU decoder,
the same engine folder on disk and the same prompts:

  (a) engine      `PowerInferEngine` (hot neurons pinned + LRU cold neuron cache within the
                  budget, predictors, bundles read on demand by reader threads, pipelined)
  (b) engine sync the same engine with reads on the main thread (`pipeline=False`): what the
                  I/O-compute pipeline buys
  (c) mmap dense  `MmapDense`: llama.cpp-style dense decode of the FFN memory-mapped from a
                  copy of the same bundle file; only `budget` bytes stay resident, the rest is
                  evicted after each layer (madvise + posix_fadvise DONTNEED) and faulted in
                  again by the next token
  (d) in memory   `InMemoryDense`: every weight in memory (the speed line)

Figures: decode tokens/s (prompt forward excluded) as medians over `--reps` repetitions of
`time_interleaved` (each repetition runs every prompt through every method, rotating the
order); bytes read from storage per token as the kernel counts them (`read_bytes` of
/proc/self/io) and, for the engine, as it requested them; the engine's resident hit rate,
I/O-wait share and peak resident FFN bytes (checked <= the budget). Ratios: a/c = how many
times faster the engine decodes than mmap dense, a/d = engine vs all-in-memory.

The model is the powerinfer2 claims' default ReLU decoder (trained here in ~1-2 min unless
`--model-dir` points at a `Llama.save_pretrained` folder), converted with the claims' settings
unless `--engine-dir` holds a converted folder (it is created there when missing).

    python benchmarks/powerinfer2_decode.py --engine-dir /tmp/pi2-bench
    python benchmarks/powerinfer2_decode.py --engine-dir /tmp/pi2-bench --reps 5 --new-tokens 64
    python benchmarks/powerinfer2_decode.py --budgets 1,0.25 --reps 1 --prompts 1   # quick
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

from paperlab.core.data.text import code_prompts
from paperlab.core.device import torch_threads
from paperlab.core.llama import Llama
from paperlab.papers.powerinfer2 import InMemoryDense, MmapDense, PowerInferEngine
from paperlab.papers.powerinfer2.claims import PowerInfer2ClaimsConfig
from paperlab.papers.powerinfer2.engine import convert
from paperlab.papers.powerinfer2.experiments import (
    MMAP_COPY,
    convert_config,
    relu_model_config,
    time_budget,
)
from paperlab.papers.powerinfer2.layout import FILES, load_engine_folder
from paperlab.papers.powerinfer2.sparse_model import fit_relu_model

DEFAULTS = PowerInfer2ClaimsConfig()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--budgets", default="1,0.5,0.25,0.1", help="shares of the FFN bytes")
    p.add_argument("--prompts", type=int, default=DEFAULTS.prompts, help="validation code lines")
    p.add_argument("--prompt-len", type=int, default=DEFAULTS.prompt_len, help="bytes")
    p.add_argument("--new-tokens", type=int, default=DEFAULTS.new_tokens, help="per prompt")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions (medians)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (all methods)")
    p.add_argument("--io-threads", type=int, default=DEFAULTS.io_threads, help="engine readers")
    p.add_argument("--max-gap", type=int, default=DEFAULTS.max_gap, help="engine read merging")
    p.add_argument("--hot-share", type=float, default=DEFAULTS.hot_share)
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--model-dir", help="a Llama.save_pretrained folder (ReLU) instead of training")
    p.add_argument("--engine-dir", help="reuse / create the converted engine folder here")
    p.add_argument("--no-sync", action="store_true", help="skip (b), the unpipelined engine")
    args = p.parse_args()
    try:
        args.budgets = sorted((float(b) for b in args.budgets.split(",")), reverse=True)
    except ValueError:
        p.error("--budgets: comma-separated shares such as 1,0.5,0.25,0.1")
    if not args.budgets or any(not 0 < b <= 1 for b in args.budgets):
        p.error("--budgets: shares in (0, 1]")
    if min(args.prompts, args.prompt_len, args.reps, args.threads) < 1 or args.new_tokens < 2:
        p.error("--prompts, --prompt-len, --reps, --threads >= 1 and --new-tokens >= 2")
    return args


def get_model(args) -> tuple[Llama, str]:
    if args.model_dir:
        return Llama.from_pretrained(args.model_dir).eval(), f"loaded from {args.model_dir}"
    model, info = fit_relu_model(relu_model_config(DEFAULTS), seed=args.seed, progress=True)
    return model, f"trained in {info['seconds']:.0f} s (val loss {info['val_loss']:.3f} nats/B)"


def get_folder(args, model: Llama) -> tuple[Path, str]:
    folder = Path(args.engine_dir or "/tmp/paperlab-powerinfer2-bench")
    if (folder / FILES["config"]).is_file():
        meta, config, _ = load_engine_folder(folder)
        if config != model.config:
            sys.exit(f"{folder} holds another model ({config}); remove it or pick another")
        note = f"engine folder {folder} (reused)"
    else:
        start = time.perf_counter()
        convert(
            None, folder, config=convert_config(DEFAULTS, args.seed), model=model, progress=True
        )
        meta, _, _ = load_engine_folder(folder)
        note = f"engine folder {folder} (converted in {time.perf_counter() - start:.0f} s)"
    if not (folder / MMAP_COPY).is_file():  # the baseline maps its own copy
        shutil.copyfile(folder / FILES["bundles"], folder / MMAP_COPY)
    return folder, note


def measure(args, folder: Path, model: Llama) -> list[dict]:
    prompts = [torch.tensor([p]) for p in code_prompts(args.prompts, args.prompt_len)]
    dense = InMemoryDense(model, threads=args.threads)
    rows = []
    for b in args.budgets:
        kw = dict(
            memory_budget=b,
            hot_share=args.hot_share,
            io_threads=args.io_threads,
            max_gap=args.max_gap,
            threads=args.threads,
        )
        runs = {"engine": PowerInferEngine.from_pretrained(folder, **kw)}
        if not args.no_sync:
            runs["sync"] = PowerInferEngine.from_pretrained(folder, pipeline=False, **kw)
        runs["mmap"] = MmapDense(
            folder, memory_budget=b, file=folder / MMAP_COPY, threads=args.threads
        )
        runs["dense"] = dense
        try:
            stats, outputs = time_budget(
                runs,
                prompts,
                new_tokens=args.new_tokens,
                reps=args.reps,
                progress=True,
                desc=f"budget {b:.0%}",
            )
        finally:
            for name, r in runs.items():
                if name != "dense":
                    r.close()
        same = all(
            torch.equal(a, d) for a, d in zip(outputs["mmap"], outputs["dense"], strict=True)
        )
        rows.append(dict(budget=b, stats=stats, mmap_same=same))
    return rows


def med(stats: list[dict], key: str) -> float:
    return statistics.median(s[key] for s in stats)


def table(rows: list[dict], sync: bool) -> str:
    mib = 2**20
    head = (
        ["budget", "engine tok/s"]
        + (["engine sync tok/s"] if sync else [])
        + [
            "mmap tok/s",
            "in-memory tok/s",
            "engine / mmap",
            "engine / in-memory",
            "engine MiB/tok (kernel; requested)",
            "mmap MiB/tok (kernel)",
            "bytes engine / mmap",
            "resident hit rate",
            "I/O wait share",
            "peak FFN MiB <= budget MiB",
        ]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r["stats"]
        e, mm, d = (
            med(s["engine"], "tokens_per_s"),
            med(s["mmap"], "tokens_per_s"),
            med(s["dense"], "tokens_per_s"),
        )
        eb, mb = (
            med(s["engine"], "block_read_bytes_per_token"),
            med(s["mmap"], "block_read_bytes_per_token"),
        )
        peak = max(x["peak_resident_ffn_bytes"] for x in s["engine"])
        budget = med(s["engine"], "budget_bytes")
        cells = [f"{r['budget']:.0%}", f"{e:.1f}"]
        if sync:
            cells.append(f"{med(s['sync'], 'tokens_per_s'):.1f}")
        ok = "yes" if peak <= budget else "NO"
        cells += [
            f"{mm:.1f}",
            f"{d:.1f}",
            f"{e / mm:.2f}x",
            f"{e / d:.2f}x",
            f"{eb / mib:.2f}; {med(s['engine'], 'bytes_read_per_token') / mib:.2f}",
            f"{mb / mib:.2f}",
            f"{eb / mb:.2f}" if mb else "-",
            f"{med(s['engine'], 'hit_rate'):.1%}",
            f"{med(s['engine'], 'io_wait_share'):.1%}",
            f"{peak / mib:.2f} <= {budget / mib:.2f} {ok}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    with torch_threads(args.threads):
        model, model_note = get_model(args)
        folder, folder_note = get_folder(args, model)
        rows = measure(args, folder, model)
    meta, config, _ = load_engine_folder(folder)
    ffn = 3 * config.dim * config.ffn_hidden * 4 * config.n_layers
    print(
        f"\nmodel: dim {config.dim}, {config.n_layers} layers, ffn {config.ffn_hidden}; FFN "
        f"{ffn / 2**20:.1f} MiB; {model_note}; {folder_note}"
    )
    print(
        f"sparsity per layer {[round(s, 3) for s in meta['sparsity']]}; predictor recall "
        f"{[round(m['recall'], 3) for m in meta['predictor_metrics']]}"
    )
    print(
        f"torch {torch.__version__}, {platform.machine()}, torch threads {args.threads}, "
        f"engine reader threads {args.io_threads}, max_gap {args.max_gap}; {args.prompts} "
        f"prompts x {args.new_tokens} new tokens x {args.reps} reps\n"
    )
    print(table(rows, not args.no_sync))
    same = all(r["mmap_same"] for r in rows)
    print(f"\nmmap dense tokens == in-memory tokens at every budget: {'yes' if same else 'NO'}")
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
