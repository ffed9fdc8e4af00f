"""AdvPrompter: seconds per generated suffix vs per optimised suffix, side by side in one process.

The paper's speed claim (arXiv 2404.16873, abstract: generating a suffix is ~800x faster than
optimisation attacks) in the miniature world of `paperlab.papers.advprompter`. The models are
those of the claims' `default` preset (`AdvPrompterConfig()`, seed 0): the target, the base and
the trained prompter. They come from the paperlab disk cache when a `paperlab reproduce
advprompter` has run (else they are trained here, ~2 CPU-minutes, and cached).

Per batch size B (1 = one request at a time, 8 = the training batch), on the same held-out
requests:

  generate    the trained prompter samples one suffix per request (temperature 1, top-p 0.9)
  optimise    AdvPrompterOpt from the untrained prompter (an attack without AdvPrompter)
  optimise+   AdvPrompterOpt from the trained prompter (what training runs every batch)

Timing is `paperlab.core.timing.time_interleaved` (methods interleaved, order rotating, one
untimed warm-up; medians over repetitions). Each method's success rate (jailbroken share) is
printed next to it, so a fast method that fails is not mistaken for a fast attack.

    python benchmarks/advprompter.py                       # B = 1 and 8, 5 repetitions
    python benchmarks/advprompter.py --reps 3 --threads 2

Writes `benchmarks/results/advprompter.json` (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import ArtifactCache, default_cache_dir
from paperlab.core.timing import time_interleaved
from paperlab.papers.advprompter.claims import AdvPrompterConfig
from paperlab.papers.advprompter.experiments import opt_params, world
from paperlab.papers.advprompter.models import sample_suffixes
from paperlab.papers.advprompter.opt import advprompter_opt
from paperlab.papers.advprompter.training import jailbroken

OUT = Path(__file__).resolve().parent / "results" / "advprompter.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (5)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    ap.add_argument("--batches", default="1,8", help="batch sizes to time (1,8)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON ({OUT.name})")
    args = ap.parse_args()
    if args.reps < 1 or args.threads < 1:
        raise SystemExit("--reps and --threads must be >= 1")
    sizes = [int(b) for b in args.batches.split(",")]
    if not sizes or min(sizes) < 1:
        raise SystemExit("--batches: positive integers, e.g. 1,8")
    torch.set_num_threads(args.threads)
    cfg = AdvPrompterConfig()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(
            config=cfg,
            scale="default",
            seed=0,
            device="cpu",
            out_dir=Path(tmp),
            progress=True,
            cache=ArtifactCache(default_cache_dir()),
        )
        w = world(ctx)
    tok, target, allowed, params = w["tok"], w["target"], w["allowed"], opt_params(cfg)
    gen = torch.Generator().manual_seed(0)
    tgt = {r.text: r.target for r in w["test_set"]}
    rows = []
    for b in sizes:
        batches = [[r.text for r in w["test_set"][i : i + b]] for i in range(0, 16, b)][:4]
        methods = {
            "generate": lambda xs: sample_suffixes(
                w["prompter"], tok, xs, allowed, length=cfg.suffix_len, generator=gen
            ),
            "optimise": lambda xs: advprompter_opt(
                w["untrained"],
                target,
                tok,
                xs,
                [tgt[x] for x in xs],
                allowed,
                params,
                generator=gen,
            ),
            "optimise+": lambda xs: advprompter_opt(
                w["prompter"], target, tok, xs, [tgt[x] for x in xs], allowed, params, generator=gen
            ),
        }
        t = time_interleaved(methods, batches, reps=args.reps, desc=f"B={b}", progress=True)
        n = sum(len(x) for x in batches)
        row = {"batch": b, "suffixes_per_rep": n}
        for name in methods:
            ok = [
                jailbroken(target, tok, x, s) for x, s in zip(batches, t.outputs[name], strict=True)
            ]
            row[f"sec_per_suffix_{name}"] = t.median(name) / n
            row[f"success_{name}"] = sum(map(sum, ok)) / n
        row["ratio_optimise_over_generate"] = t.ratio("optimise", "generate")
        row["ratio_optimise+_over_generate"] = t.ratio("optimise+", "generate")
        rows.append(row)
        print(
            f"B={b}: generate {row['sec_per_suffix_generate'] * 1e3:.2f} ms/suffix "
            f"(success {row['success_generate']:.2f}); AdvPrompterOpt "
            f"{row['sec_per_suffix_optimise'] * 1e3:.1f} ms/suffix (success "
            f"{row['success_optimise']:.2f}) -> {row['ratio_optimise_over_generate']:.0f}x"
        )
    result = {
        "benchmark": "advprompter: seconds per generated vs optimised suffix",
        "config": {
            "reps": args.reps,
            "threads": args.threads,
            "suffix_len": cfg.suffix_len,
            "top_k": cfg.top_k,
            "num_beams": cfg.num_beams,
            "dim": cfg.dim,
        },
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_file = args.out.with_suffix(".json.tmp")
    tmp_file.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp_file, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
