"""Batch-1 decoding on the shared byte-level target, greedy and sampled, with the decoded text's
quality beside every speed-up; written to `benchmarks/results/decode.json`.

Kangaroo self-speculative decoding (arXiv 2404.18911) against Hugging Face assisted generation,
and MTP self-speculative decoding (arXiv 2404.19737), every ratio against plain decoding:

  (a)  ours: plain KV-cached decoding of the target (core `generate`): the reference
  (b)  Hugging Face `generate` on the same target converted with `core.hf.to_hf_model`
  (c)  Kangaroo on the target: first `exit_layer` layers + adapter draft, eta / gamma
  (d)  HF assisted generation on the same HF target, `assistant_model=` a separately trained
       2-layer draft of the same width (same recipe), HF's default assistant settings
  (e0) the MTP model (the target's size and recipe, n = 4 heads): head-1 decoding
  (e)  the same model, self-speculative (heads 2..4 draft, head 1 verifies)

Each runs greedy (the papers' setting; exact: (b), (c), (d) must give (a)'s tokens, (e) those
of (e0)) and sampled at `--temperature` (lossless rules: Kangaroo's and MTP's speculative
sampling, HF's assisted sampling), since the greedy text of a small model loops and a loop is
easy to draft. Next to every method: distinct-4 and the longest repeated span of its
continuations (`paperlab.core.text_quality`); a speed-up counts only on text with distinct-4 >=
0.5 (the claims' floor). Then ours vs HF `generate` greedy at two sizes (the target and a
random-weight model `--big-dim` wide): the per-step cost of core's decode path.

Models: the target, the adapter and the MTP model are those of the `kangaroo` and `mtp` claims
at default scale (`core.lm.DecodeTarget`), taken from the paperlab disk cache (`--cache-dir`,
default `~/.cache/paperlab`) under the same keys as `paperlab reproduce kangaroo` / `mtp`, so
after those runs nothing is trained here; otherwise they are trained and cached (~3-4 min).

Timing: `core.timing.time_interleaved` (rotating order, medians of `--reps`), one torch thread
by default; `core.timing.LoadMonitor` records other programs' load (runnable threads per core)
during each timed block, and the load average is recorded too.

    python benchmarks/decode.py                                  # default: 5 reps x 4 prompts
    python benchmarks/decode.py --reps 1 --prompts 2 --new-tokens 32 --no-hf   # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import ArtifactCache, ModuleCodec, default_cache_dir
from paperlab.core.data.text import ByteTokenizer
from paperlab.core.files import write_text_atomic
from paperlab.core.generate import generate
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.lm import decode_prompts
from paperlab.core.text_quality import text_quality
from paperlab.core.timing import LoadMonitor, time_interleaved
from paperlab.papers.kangaroo import KangarooDecoder
from paperlab.papers.kangaroo.claims import KangarooClaimsConfig
from paperlab.papers.kangaroo.experiments import (
    TARGET_FIELDS,
    byte_target_config,
    shared_pair,
    train_byte_target,
)
from paperlab.papers.mtp.claims import MTPClaimsConfig
from paperlab.papers.mtp.experiments import shared_byte_model
from paperlab.papers.mtp.speculative import greedy_generate, self_speculative_generate

QUALITY_FLOOR = 0.5  # the claims' floor (mtp.claims / kangaroo.claims QUALITY_FLOOR)
RESULTS = Path(__file__).parent / "results" / "decode.json"
LABELS = {
    "a": "(a) ours: plain, KV cache",
    "b": "(b) HF `generate`",
    "c": "(c) Kangaroo",
    "d": "(d) HF assisted generation",
    "e0": "(e0) MTP model: head-1 plain",
    "e": "(e) MTP model: self-speculative",
}
REFERENCE = {"b": "a", "c": "a", "d": "a", "e": "e0"}  # greedy: whose tokens each must repeat


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--new-tokens", type=int, default=96, help="new bytes per prompt")
    p.add_argument("--prompts", type=int, default=4, help="held-out code prompts")
    p.add_argument("--prompt-len", type=int, default=32, help="bytes per prompt")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions (medians)")
    p.add_argument("--temperature", type=float, default=0.9, help="the sampled runs")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0, help="training and sampling seed")
    p.add_argument("--big-dim", type=int, default=256, help="width of the second HF-vs-ours size")
    p.add_argument("--cache-dir", help="paperlab disk cache (default: ~/.cache/paperlab)")
    p.add_argument("--out", default=str(RESULTS), help="results JSON ('-': do not write)")
    p.add_argument("--no-hf", action="store_true", help="skip (b), (d) and the size sweep")
    p.add_argument("--no-mtp", action="store_true", help="skip (e0) and (e)")
    args = p.parse_args()
    if min(args.new_tokens, args.prompts, args.prompt_len, args.reps) < 1:
        p.error("--new-tokens, --prompts, --prompt-len and --reps must be >= 1")
    if args.temperature <= 0:
        p.error("--temperature must be > 0 (the greedy runs are always made)")
    if args.big_dim < 8 or args.big_dim % 8:
        p.error("--big-dim must be a positive multiple of 8")
    return args


# ---------------------------------------------------------------------------------------------
# Models: the claims' own, through the paperlab disk cache


def get_models(args, cache: ArtifactCache, out_dir: Path) -> dict:
    kcfg = KangarooClaimsConfig()
    kctx = RunContext(config=kcfg, scale="default", seed=args.seed, device="cpu", out_dir=out_dir)
    kctx.cache = cache
    target, adapter, _ = shared_pair(kctx)
    models = {"target": target, "adapter": adapter, "kcfg": kcfg}
    if not args.no_hf:
        spec = {f: getattr(kcfg, f) for f in TARGET_FIELDS} | {"draft_layers": 2}
        models["draft"], _ = kctx.shared(
            "decode-assistant-draft",
            lambda: train_byte_target(kcfg, args.seed, n_layers=2, progress=True),
            spec=spec,
            codec=ModuleCodec(build=lambda: Llama(byte_target_config(kcfg, 2)), kind="Llama"),
        )
    if not args.no_mtp:
        mctx = RunContext(
            config=MTPClaimsConfig(), scale="default", seed=args.seed, device="cpu", out_dir=out_dir
        )
        mctx.cache = cache
        models["mtp"], _ = shared_byte_model(mctx, mctx.config.n_future)
    return models


# ---------------------------------------------------------------------------------------------
# Hugging Face


def hf_generate(
    hf_model, new_tokens: int, *, assistant=None, temperature: float = 0.0, seed: int = 0
) -> Callable[[list[int]], list[int]]:
    """HF `generate` of exactly `new_tokens` tokens (the converted models have no eos); with
    `assistant`, assisted generation; temperature > 0 samples (HF's global RNG, seeded once)."""
    extra = {} if assistant is None else {"assistant_model": assistant}
    if temperature > 0:
        extra |= {"do_sample": True, "temperature": temperature, "top_k": None, "top_p": None}
        torch.manual_seed(seed)
    else:
        extra |= {"do_sample": False}

    def run(prompt: list[int]) -> list[int]:
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = hf_model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=0,
                **extra,
            )
        return out[0, len(prompt) :].tolist()

    return run


def tokens_of(out) -> list[int]:
    return out if isinstance(out, list) else out.tokens


def per_forward(outputs: list) -> float | None:
    """New tokens per verifying forward of a speculative method's results (None: plain)."""
    first = outputs[0]
    if hasattr(first, "target_forwards"):
        return sum(len(r.tokens) for r in outputs) / sum(r.target_forwards for r in outputs)
    if hasattr(first, "forwards"):
        return sum(len(r.tokens) for r in outputs) / sum(r.forwards for r in outputs)
    return None


def run_block(name: str, methods: dict, prompts, reps: int) -> dict:
    """Time `methods` interleaved; per method tokens/s, quality, tokens per forward."""
    with LoadMonitor() as load:
        timings = time_interleaved(methods, prompts, reps, progress=True, desc=name)
    rows = {}
    for m in methods:
        toks = [tokens_of(o) for o in timings.outputs[m]]
        n = sum(len(t) for t in toks)
        rows[m] = {
            "tokens_per_s": n / timings.median(m),
            "ms_per_token": 1000 * timings.median(m) / n,
            "tokens_per_forward": per_forward(timings.outputs[m]),
            "seconds_per_rep": timings.seconds[m],
            "tokens": toks,
        } | text_quality(toks)
    return {"rows": rows, "other_load_per_core": load.load_per_core}


def ratio(rows: dict, fast: str, slow: str) -> float:
    return rows[fast]["tokens_per_s"] / rows[slow]["tokens_per_s"]


def print_block(title: str, block: dict, greedy: bool) -> None:
    rows = block["rows"]
    print(
        f"\n{title} (other programs' load during timing: {block['other_load_per_core']:.2f}/core)"
    )
    print(
        "| method | tokens/s | ms/token | vs (a) | tokens / verifying forward | distinct-4 | "
        "longest repeat | identical to |\n|---|---|---|---|---|---|---|---|"
    )
    for m, r in rows.items():
        same = ""
        if greedy and m in REFERENCE and REFERENCE[m] in rows:
            same = (
                f"{'yes' if r['tokens'] == rows[REFERENCE[m]]['tokens'] else 'NO'} ({REFERENCE[m]})"
            )
        tpf = "" if r["tokens_per_forward"] is None else f"{r['tokens_per_forward']:.2f}"
        print(
            f"| {LABELS[m]} | {r['tokens_per_s']:.0f} | {r['ms_per_token']:.2f} | "
            f"{ratio(rows, m, 'a'):.2f}x | {tpf} | {r['distinct4']:.2f} | "
            f"{r['longest_repeat']:.0f} B | {same} |"
        )
    first = ByteTokenizer().decode(rows["a"]["tokens"][0])
    print(f"(a) on the first prompt: {first!r}")


def goals(block: dict) -> dict:
    """The issue's goals on one block: each ratio with its text quality and whether it counts."""
    rows, out = block["rows"], {}
    wanted = [("c", "a", 1.5), ("c", "d", 1.0), ("e", "a", 2.5), ("e", "e0", 2.5)]
    for fast, slow, goal in wanted:
        if fast in rows and slow in rows:
            value = ratio(rows, fast, slow)
            quality = min(rows[fast]["distinct4"], rows[slow]["distinct4"])
            out[f"{fast}/{slow}"] = {
                "ratio": value,
                "goal": goal,
                "met": bool(value >= goal),
                "distinct4": quality,
                "powered": bool(quality >= QUALITY_FLOOR),
            }
    return out


def size_sweep(args, target: Llama, prompts, n: int) -> list[dict]:
    """Ours vs HF `generate` (greedy, same weights, same tokens) at the target's size and at a
    random-weight model `--big-dim` wide: the per-step cost of the two decode paths."""
    from paperlab.core.hf import to_hf_model

    torch.manual_seed(args.seed)
    c = target.config
    big = Llama(
        LlamaConfig(
            vocab_size=256,
            dim=args.big_dim,
            n_layers=c.n_layers,
            n_heads=max(2, args.big_dim // 64),
        )
    ).eval()
    out = []
    for label, model in (("target", target), (f"dim {args.big_dim} (random weights)", big)):
        hf = to_hf_model(model)
        methods = {
            "ours": lambda p, m=model: generate(m, [p], max_new_tokens=n)[0],
            "hf": hf_generate(hf, n),
        }
        with LoadMonitor() as load:
            t = time_interleaved(methods, prompts, args.reps, progress=True, desc=f"size {label}")
        same = t.outputs["ours"] == t.outputs["hf"]
        out.append(
            {
                "model": label,
                "params": model.num_params(),
                "dim": model.config.dim,
                "n_layers": model.config.n_layers,
                "ours_ms_per_token": 1000 * t.median("ours") / (n * len(prompts)),
                "hf_ms_per_token": 1000 * t.median("hf") / (n * len(prompts)),
                "ours_over_hf": t.median("hf") / t.median("ours"),
                "identical": same,
                "other_load_per_core": load.load_per_core,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    command = "python " + shlex.join(["benchmarks/decode.py", *sys.argv[1:]])
    print("$ " + command)
    load_start = os.getloadavg()
    if args.threads:  # one thread: no OpenMP barrier stalls when the cores are shared
        torch.set_num_threads(args.threads)
    versions = {"torch": torch.__version__, "python": platform.python_version()}
    if not args.no_hf:
        import transformers

        versions["transformers"] = transformers.__version__
    cache = ArtifactCache(args.cache_dir or default_cache_dir())
    with tempfile.TemporaryDirectory() as tmp:
        models = get_models(args, cache, Path(tmp))
    target, adapter, kcfg = models["target"], models["adapter"], models["kcfg"]
    mtp, n, T = models.get("mtp"), args.new_tokens, args.temperature
    prompts = decode_prompts(args.prompts, args.prompt_len)
    kangaroo = KangarooDecoder(target, adapter, eta=kcfg.eta, gamma=kcfg.gamma)
    hf_target = hf_draft = None
    if not args.no_hf:
        from paperlab.core.hf import to_hf_model

        hf_target, hf_draft = to_hf_model(target), to_hf_model(models["draft"])

    def gen(offset: int) -> torch.Generator:
        return torch.Generator().manual_seed(args.seed + offset)

    blocks = {}
    for mode, temp in (("greedy", 0.0), ("sampled", T)):
        g = {k: gen(i) for i, k in enumerate(("a", "c", "e0", "e"))}  # one stream per method
        methods: dict[str, Callable] = {
            "a": lambda p, g=g, t=temp: generate(
                target, [p], max_new_tokens=n, temperature=t, generator=g["a"]
            )[0]
        }
        if hf_target is not None:
            methods["b"] = hf_generate(hf_target, n, temperature=temp, seed=args.seed)
        methods["c"] = lambda p, g=g, t=temp: kangaroo.generate(
            p, max_new_tokens=n, temperature=t, generator=g["c"]
        )
        if hf_target is not None:
            methods["d"] = hf_generate(
                hf_target, n, assistant=hf_draft, temperature=temp, seed=args.seed
            )
        if mtp is not None:
            methods["e0"] = lambda p, g=g, t=temp: greedy_generate(
                mtp, p, max_new_tokens=n, temperature=t, generator=g["e0"]
            )
            methods["e"] = lambda p, g=g, t=temp: self_speculative_generate(
                mtp, p, max_new_tokens=n, temperature=t, generator=g["e"]
            )
        blocks[mode] = run_block(mode, methods, prompts, args.reps)
        title = "greedy" if mode == "greedy" else f"sampled, temperature {T:g}"
        print_block(title, blocks[mode], greedy=mode == "greedy")
    sizes = [] if args.no_hf else size_sweep(args, target, prompts, n)
    for s in sizes:
        print(
            f"ours vs HF generate, {s['model']} ({s['params']:,} params): "
            f"{s['ours_ms_per_token']:.2f} vs {s['hf_ms_per_token']:.2f} ms/token = "
            f"{s['ours_over_hf']:.2f}x, identical tokens: {s['identical']}"
        )
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": versions,
        "load": {
            "loadavg_1min_start": load_start[0],
            "loadavg_1min_end": os.getloadavg()[0],
            "other_load_per_core": {k: b["other_load_per_core"] for k, b in blocks.items()},
        },
        "config": {
            "target": dataclasses.asdict(target.config),
            "exit_layer": adapter.exit_layer,
            "eta": kcfg.eta,
            "gamma": kcfg.gamma,
            "mtp_n_future": None if mtp is None else mtp.n_future,
            "prompts": args.prompts,
            "prompt_len": args.prompt_len,
            "new_tokens": n,
            "reps": args.reps,
            "temperature": T,
            "quality_floor": QUALITY_FLOOR,
        },
        "greedy": blocks["greedy"]["rows"],
        "sampled": blocks["sampled"]["rows"],
        "identical": {
            m: blocks["greedy"]["rows"][m]["tokens"] == blocks["greedy"]["rows"][r]["tokens"]
            for m, r in REFERENCE.items()
            if m in blocks["greedy"]["rows"] and r in blocks["greedy"]["rows"]
        },
        "goals": {mode: goals(b) for mode, b in blocks.items()},
        "ours_vs_hf_sizes": sizes,
    }
    print("\ngoals (a ratio counts only on text with distinct-4 >= 0.5):")
    for mode, rows in result["goals"].items():
        for key, gl in rows.items():
            print(
                f"  {mode:<7} {key:<6} {gl['ratio']:.2f}x (goal {gl['goal']:g}): "
                f"{'met' if gl['met'] else 'missed'}; distinct-4 {gl['distinct4']:.2f} "
                f"{'(powered)' if gl['powered'] else '(below the floor: does not count)'}"
            )
    if args.out != "-":
        write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
