"""Batch-1 greedy decoding, four ways plus references, on one byte-level target in one process.

Kangaroo self-speculative decoding (arXiv 2404.18911) against Hugging Face assisted generation
and MTP self-speculative decoding (arXiv 2404.19737), every ratio against our plain decoding:

  (a)  ours: plain KV-cached greedy decoding of the target (core `generate`): the reference
  (b)  Hugging Face transformers `generate` (greedy, its KV cache) on the same target converted
       with `to_hf_model`: the reference for the per-step cost of (a)
  (c)  Kangaroo on the same target weights: the target's first `--exit-layer` layers + the
       adapter draft, drafting stops when the draft's top-1 probability < `--eta` or after
       `--gamma` tokens, the remaining layers verify (`KangarooDecoder(...).generate`)
  (d)  HF assisted generation on the same HF target: `generate(assistant_model=hf_draft,
       do_sample=False)` with a separately trained small Llama draft (`--draft-layers` layers,
       the target's dim, heads and byte vocabulary) converted with `to_hf_model`; HF's default
       assistant settings (printed: number of draft tokens, schedule, confidence threshold)
  (e0) a MultiTokenLlama with the target's dim, heads and total depth L (`--n-future` heads, so
       the target's parameter count), plain greedy with head 1 (`greedy_generate`)
  (e)  the same model, self-speculative: heads 2..n draft, head 1 verifies
       (`self_speculative_generate`); read it against (a) and against its own (e0)

Models. All are trained here on the stdlib corpus for the same number of steps with the same
recipe (batch, sequence length, lr, warmup, seed); the defaults are `KangarooClaimsConfig()`'s,
so the target, the adapter and eta / gamma are those of the `kangaroo` claims. Target:
`kangaroo.experiments.train_byte_target`; adapter: the claims' recipe (`fit_adapter`) on the
frozen target; draft: `train_draft` below (next-token cross-entropy, as the target); MTP:
`mtp.experiments.train_byte_model`. With `--ckpt-dir DIR` each model is loaded from DIR when a
file for its exact training recipe is there (the file name carries a hash of the recipe and of the
corpus), else trained and saved there, so later runs only time. `--threads` (default 1) is set
for the whole process, training included.

Timing: each repetition runs every prompt through every method, in an order that rotates
between repetitions (`paperlab.core.timing.time_interleaved`, after one untimed warm-up call
per method); figures are medians over repetitions of the time summed over prompts, and X/Y is
median time of Y / median time of X (how many times faster X is). Checks: (b), (c), (d) give
exactly the tokens of (a), (e) those of (e0), and every method gives exactly `--new-tokens`
tokens (the models have no eos; HF also gets min_new_tokens = max_new_tokens). By default 5
repetitions of 4 prompts (32-byte lines of validation code) x 96 new bytes, within the trained
128 positions.

    python benchmarks/decode.py --ckpt-dir /tmp/decode-ckpt             # train 4 models, save, time
    python benchmarks/decode.py --ckpt-dir /tmp/decode-ckpt --reps 9    # reload, time only
    python benchmarks/decode.py --steps 60 --adapter-steps 30 --reps 1 --prompts 2 --new-tokens 48
    python benchmarks/decode.py --no-hf --no-mtp                        # (a) and (c) only
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from paperlab.core.data.text import ByteTokenizer, code_prompts, load_corpus, random_batches
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.timing import time_interleaved
from paperlab.papers.kangaroo import (
    KangarooAdapter,
    KangarooDecoder,
    evaluate_adapter,
)
from paperlab.papers.kangaroo.claims import KangarooClaimsConfig
from paperlab.papers.kangaroo.experiments import (
    byte_target_config,
    fit_adapter,
    plain_greedy,
    train_byte_target,
)
from paperlab.papers.mtp.claims import MTPClaimsConfig
from paperlab.papers.mtp.experiments import byte_model_config, train_byte_model
from paperlab.papers.mtp.model import MTPConfig, MultiTokenLlama
from paperlab.papers.mtp.speculative import greedy_generate, self_speculative_generate

DEFAULTS = KangarooClaimsConfig()
LABELS = {
    "a": "(a) ours: plain greedy, KV cache",
    "b": "(b) HF `generate` greedy",
    "c": "(c) Kangaroo",
    "d": "(d) HF assisted generation",
    "e0": "(e0) MTP model: head-1 greedy",
    "e": "(e) MTP model: self-speculative",
}
REFERENCE = {"b": "a", "c": "a", "d": "a", "e": "e0"}  # whose tokens each method must repeat


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--steps",
        type=int,
        default=DEFAULTS.steps,
        help="training steps of the target, the draft and the MTP model",
    )
    p.add_argument(
        "--adapter-steps",
        type=int,
        default=DEFAULTS.adapter_steps,
        help="(c): adapter training steps",
    )
    p.add_argument(
        "--layers",
        type=int,
        default=DEFAULTS.n_layers,
        help="target depth L (also the MTP model's total layers)",
    )
    p.add_argument("--dim", type=int, default=DEFAULTS.dim, help="model width (all models)")
    p.add_argument("--heads", type=int, default=DEFAULTS.n_heads, help="attention heads")
    p.add_argument(
        "--exit-layer",
        type=int,
        default=DEFAULTS.exit_layer,
        help="Kangaroo: shallow layers under the adapter",
    )
    p.add_argument(
        "--eta",
        type=float,
        default=DEFAULTS.eta,
        help="Kangaroo: stop drafting below this top-1 probability",
    )
    p.add_argument(
        "--gamma",
        type=int,
        default=DEFAULTS.gamma,
        help="Kangaroo: at most this many drafts per round",
    )
    p.add_argument("--draft-layers", type=int, default=2, help="(d): layers of the HF draft")
    p.add_argument("--n-future", type=int, default=4, help="(e): heads of the MTP model")
    p.add_argument("--new-tokens", type=int, default=DEFAULTS.new_tokens, help="per prompt")
    p.add_argument("--prompts", type=int, default=DEFAULTS.prompts, help="validation code lines")
    p.add_argument("--prompt-len", type=int, default=DEFAULTS.prompt_len, help="bytes")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions (medians)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--ckpt-dir", help="load the trained models from here, or train and save them")
    p.add_argument("--no-hf", action="store_true", help="skip (b) and (d) (no transformers)")
    p.add_argument("--no-mtp", action="store_true", help="skip (e0) and (e)")
    args = p.parse_args()
    if args.draft_layers < 1 or not 2 <= args.n_future <= args.layers:
        p.error("need --draft-layers >= 1 and 2 <= --n-future <= --layers")
    if min(args.steps, args.adapter_steps, args.new_tokens, args.prompts, args.reps) < 1:
        p.error("--steps, --adapter-steps, --new-tokens, --prompts and --reps must be >= 1")
    return args


# ---------------------------------------------------------------------------------------------
# The four trained models, each loaded from --ckpt-dir when its exact recipe is there


def train_draft(cfg: KangarooClaimsConfig, layers: int, seed: int) -> Llama:
    """The draft of (d): a small core Llama trained exactly like the target
    (`kangaroo.experiments.train_byte_target`: same corpus, batches, steps, lr schedule, seed),
    only shallower."""
    return train_byte_target(cfg, seed, n_layers=layers, progress=True)[0]


def train_kangaroo_adapter(cfg: KangarooClaimsConfig, target: Llama, seed: int):
    """The claims' adapter (`kangaroo.experiments.fit_adapter`) on the frozen `target`."""
    return fit_adapter(target, cfg, seed, progress=True)[0]


def recipes(args, cfg: KangarooClaimsConfig) -> dict[str, dict]:
    """What determines each model's weights (the training corpus enters through its hash)."""
    data = load_corpus(split="train")
    common = dict(
        dim=cfg.dim,
        n_heads=cfg.n_heads,
        seq_len=cfg.seq_len,
        batch_size=cfg.batch_size,
        steps=cfg.steps,
        lr=cfg.lr,
        seed=args.seed,
        corpus_sha1=hashlib.sha1(data.numpy().tobytes()).hexdigest()[:12],
    )
    target = dict(common, n_layers=cfg.n_layers, recipe="kangaroo.experiments.train_byte_target")
    return {
        "target": target,
        "adapter": dict(
            target=target,
            exit_layer=cfg.exit_layer,
            adapter_layers=cfg.adapter_layers,
            adapter_steps=cfg.adapter_steps,
            adapter_lr=cfg.adapter_lr,
            recipe="kangaroo.experiments.fit_adapter",
        ),
        "draft": dict(
            common, n_layers=args.draft_layers, recipe="kangaroo.experiments.train_byte_target"
        ),
        "mtp": dict(
            common,
            n_layers=cfg.n_layers,
            n_future=args.n_future,
            recipe="mtp.experiments.train_byte_model",
        ),
    }


def checkpoint_path(ckpt_dir: str | None, kind: str, recipe: dict) -> Path | None:
    if not ckpt_dir:
        return None
    blob = json.dumps({"kind": kind, **recipe}, sort_keys=True).encode()
    return Path(ckpt_dir) / f"{kind}-{hashlib.sha256(blob).hexdigest()[:12]}.safetensors"


def obtain(kind: str, recipe: dict, path: Path | None, load: Callable, make: Callable):
    """(model, seconds spent training it, note): loaded from `path` if it holds a model of this
    recipe whose config checks out (`load` raises ValueError otherwise), else made and saved."""
    sidecar = path.with_suffix(".json") if path is not None else None
    if path is not None and path.is_file() and sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        if meta.get("recipe") == recipe:
            try:
                seconds = meta["train_seconds"]
                return load(path), seconds, f"loaded from {path} (trained in {seconds:.0f} s)"
            except (ValueError, RuntimeError, KeyError) as e:  # not the model its name says
                why = " ".join(str(e).split())[:160]
                print(f"note: {path} does not match this configuration ({why}); retraining")
    start = time.perf_counter()
    model = make()
    seconds = time.perf_counter() - start
    if path is None:
        return model, seconds, f"trained in {seconds:.0f} s"
    model.save_pretrained(path)
    meta = dict(
        recipe=recipe,
        train_seconds=seconds,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
    )
    sidecar.write_text(json.dumps(meta, indent=1) + "\n")
    return model, seconds, f"trained in {seconds:.0f} s, saved to {path}"


def _same(kind: str, found, expected) -> None:
    if found != expected:
        raise ValueError(f"{kind} config {found} != expected {expected}")


def load_llama(expected: LlamaConfig) -> Callable[[Path], Llama]:
    def load(path: Path) -> Llama:
        model = Llama.from_pretrained(path)
        _same("Llama", dataclasses.asdict(model.config), dataclasses.asdict(expected))
        return model.eval()

    return load


def load_adapter(target: Llama, cfg: KangarooClaimsConfig) -> Callable[[Path], KangarooAdapter]:
    def load(path: Path) -> KangarooAdapter:
        adapter = KangarooAdapter.from_pretrained(path)
        adapter.check_target(target)
        found = (adapter.exit_layer, len(adapter.layers))
        _same("adapter", found, (cfg.exit_layer, cfg.adapter_layers))
        return adapter.eval()

    return load


def load_mtp(expected: MTPConfig) -> Callable[[Path], MultiTokenLlama]:
    def load(path: Path) -> MultiTokenLlama:
        model = MultiTokenLlama.from_pretrained(path)
        _same("MultiTokenLlama", dataclasses.asdict(model.config), dataclasses.asdict(expected))
        return model.eval()

    return load


def get_models(args, cfg: KangarooClaimsConfig) -> dict[str, tuple]:
    """{kind: (model, train seconds, note)} for target, adapter and, unless skipped, draft, mtp."""
    rec = recipes(args, cfg)
    path = {kind: checkpoint_path(args.ckpt_dir, kind, r) for kind, r in rec.items()}
    target_config = byte_target_config(cfg, cfg.n_layers)  # what train_byte_target builds
    out = {}
    out["target"] = obtain(
        "target",
        rec["target"],
        path["target"],
        load_llama(target_config),
        lambda: train_byte_target(cfg, args.seed, progress=True)[0],
    )
    target = out["target"][0]
    out["adapter"] = obtain(
        "adapter",
        rec["adapter"],
        path["adapter"],
        load_adapter(target, cfg),
        lambda: train_kangaroo_adapter(cfg, target, args.seed),
    )
    if not args.no_hf:
        out["draft"] = obtain(
            "draft",
            rec["draft"],
            path["draft"],
            load_llama(byte_target_config(cfg, args.draft_layers)),
            lambda: train_draft(cfg, args.draft_layers, args.seed),
        )
    if not args.no_mtp:
        mcfg = MTPClaimsConfig(
            dim=cfg.dim,
            n_layers=cfg.n_layers,
            n_heads=cfg.n_heads,
            seq_len=cfg.seq_len,
            batch_size=cfg.batch_size,
            steps=cfg.steps,
            lr=cfg.lr,
        )
        expected = byte_model_config(mcfg, args.n_future)
        out["mtp"] = obtain(
            "mtp",
            rec["mtp"],
            path["mtp"],
            load_mtp(expected),
            lambda: train_byte_model(mcfg, args.n_future, args.seed, progress=True)[0],
        )
    return out


@torch.inference_mode()
def draft_agreement(cfg, target, adapter, draft, mtp) -> list[str]:
    """Teacher-forced top-1 agreement of each drafter with the token its verifier would pick,
    on one batch of validation code (8 x seq_len): what acceptance needs on text that is not
    the models' own greedy output (which is often repetitive and easier)."""
    x, _ = next(random_batches(load_corpus(split="val"), 8, cfg.seq_len, 4321))
    h = target.run_layers(target.embed(x), 0, adapter.exit_layer)
    ref = target.head(target.run_layers(h, adapter.exit_layer, None)).argmax(-1)

    def agree(logits):
        return f"{float((logits.argmax(-1) == ref).float().mean()):.2f}"

    lines = [
        f"(c) adapter at exit layer {adapter.exit_layer}: {agree(adapter(target, h))} "
        f"(exit layer read through the target's head, no adapter: {agree(target.head(h))})"
    ]
    if draft is not None:
        lines.append(f"(d) {draft.config.n_layers}-layer draft: {agree(draft(x))}")
    if mtp is not None:
        pred, T = mtp(x).argmax(-1), x.shape[1]  # (B, T, n)
        heads = [
            float((pred[:, : T - i, i] == pred[:, i:, 0]).float().mean())
            for i in range(1, mtp.n_future)
        ]
        lines.append(
            f"(e) heads 2..{mtp.n_future} vs head 1 of the MTP model: "
            + ", ".join(f"{a:.2f}" for a in heads)
        )
    return lines


# ---------------------------------------------------------------------------------------------
# Hugging Face


def hf_generate(hf_model, new_tokens: int, assistant=None) -> Callable[[list[int]], list[int]]:
    """Greedy HF `generate` of exactly `new_tokens` tokens (the converted models have no eos;
    min_new_tokens would hold them if they had one); with `assistant`, assisted generation."""
    extra = {} if assistant is None else {"assistant_model": assistant}

    def run(prompt: list[int]) -> list[int]:
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = hf_model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=0,
                **extra,
            )
        return out[0, len(prompt) :].tolist()

    return run


def assisted_settings(hf_target, hf_draft) -> list[str]:
    """The assistant settings HF uses in (d): the draft's generation_config, or HF's defaults
    where it leaves them unset."""
    from transformers.utils import is_sklearn_available

    gc = hf_draft.generation_config
    defaults = getattr(type(gc), "_get_default_generation_params", dict)()
    parts = []
    for name in (
        "num_assistant_tokens",
        "num_assistant_tokens_schedule",
        "assistant_confidence_threshold",
    ):
        value = getattr(gc, name, None)
        default = f" -> HF default {defaults[name]!r}" if value is None and name in defaults else ""
        parts.append(f"{name}={value!r}{default}")
    adaptive = (
        "adapted during each call by HF's ROC rule (scikit-learn installed)"
        if (is_sklearn_available())
        else "fixed (no scikit-learn: HF does not adapt it)"
    )
    tc = hf_target.generation_config
    return [
        "(d) assistant generation_config: " + ", ".join(parts),
        f"    the confidence threshold is {adaptive}; eos_token_id target/draft "
        f"{tc.eos_token_id}/{gc.eos_token_id}, pad_token_id=0 and "
        "min_new_tokens=max_new_tokens passed to generate",
    ]


def count_forwards(module: torch.nn.Module) -> tuple[list[int], Callable[[], None]]:
    """A counter of `module`'s forward calls and the function that removes it."""
    calls = [0]
    handle = module.register_forward_pre_hook(lambda m, a: calls.__setitem__(0, calls[0] + 1))
    return calls, handle.remove


# ---------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    print("$ python " + shlex.join(sys.argv))
    load_start = os.getloadavg()
    if args.threads:  # one thread: no OpenMP barrier stalls when the cores are shared
        torch.set_num_threads(args.threads)
    try:
        cfg = dataclasses.replace(
            DEFAULTS,
            steps=args.steps,
            adapter_steps=args.adapter_steps,
            n_layers=args.layers,
            dim=args.dim,
            n_heads=args.heads,
            exit_layer=args.exit_layer,
            eta=args.eta,
            gamma=args.gamma,
            prompts=args.prompts,
            prompt_len=args.prompt_len,
            new_tokens=args.new_tokens,
            reps=args.reps,
        )
        byte_target_config(cfg, cfg.n_layers)  # dim / heads checks
    except ValueError as e:
        sys.exit(f"decode.py: {e}")
    versions = f"torch {torch.__version__}"
    if not args.no_hf:
        import transformers

        versions += f", transformers {transformers.__version__}"
    print(
        f"{versions}, Python {platform.python_version()}; {torch.get_num_threads()} torch "
        f"thread(s) of {os.cpu_count()} cores; load average {load_start[0]:.2f} (1 min) at "
        "start"
    )
    print(
        f"config: dim {cfg.dim}, {cfg.n_heads} heads, target L={cfg.n_layers}, seq_len "
        f"{cfg.seq_len}, batch {cfg.batch_size}, {cfg.steps} steps at lr {cfg.lr:g}; adapter "
        f"exit layer {cfg.exit_layer}, {cfg.adapter_steps} steps at lr {cfg.adapter_lr:g}; "
        f"eta {cfg.eta:g}, gamma {cfg.gamma}"
        + ("" if args.no_hf else f"; draft L={args.draft_layers}")
        + ("" if args.no_mtp else f"; MTP n={args.n_future}")
        + f"; seed {args.seed}"
    )
    if cfg.prompt_len + cfg.new_tokens > cfg.seq_len:
        print(
            f"note: prompt + new tokens > trained seq_len {cfg.seq_len}: beyond it the models "
            "extrapolate positions and their output degrades"
        )

    models = get_models(args, cfg)
    target, adapter = models["target"][0], models["adapter"][0]
    draft = models["draft"][0] if "draft" in models else None
    mtp = models["mtp"][0] if "mtp" in models else None
    report_models(cfg, models)

    n = cfg.new_tokens
    prompts = code_prompts(cfg.prompts, cfg.prompt_len)
    kangaroo = KangarooDecoder(target, adapter, eta=cfg.eta, gamma=cfg.gamma)
    methods: dict[str, Callable] = {"a": lambda p: plain_greedy(target, p, n)}
    hf_target = hf_draft = None
    if not args.no_hf:
        from paperlab.core.hf import to_hf_model

        hf_target, hf_draft = to_hf_model(target), to_hf_model(draft)
        methods["b"] = hf_generate(hf_target, n)
    methods["c"] = lambda p: kangaroo.generate(p, max_new_tokens=n)
    if not args.no_hf:
        methods["d"] = hf_generate(hf_target, n, assistant=hf_draft)
        print("\n".join(assisted_settings(hf_target, hf_draft)))
    if mtp is not None:
        methods["e0"] = lambda p: greedy_generate(mtp, p, max_new_tokens=n)
        methods["e"] = lambda p: self_speculative_generate(mtp, p, max_new_tokens=n)
    print(
        f"timing: {len(prompts)} prompts x {n} new tokens, {args.reps} reps, methods "
        f"{', '.join(methods)} interleaved in rotating order"
    )
    load_timing = os.getloadavg()
    timings = time_interleaved(methods, prompts, args.reps, progress=True, desc="decode")
    counts = (
        None if hf_target is None else assisted_counts(hf_target, hf_draft, methods["d"], prompts)
    )
    report(cfg, prompts, timings, counts, mtp, (load_start, load_timing, os.getloadavg()))


def report_models(cfg, models) -> None:
    target, adapter = models["target"][0], models["adapter"][0]
    size = target.num_params()
    print("\nmodels (byte-level, trained on the stdlib corpus):")
    rows = [
        ("target", f"Llama L={target.config.n_layers}", target.num_params()),
        ("adapter", f"KangarooAdapter at exit layer {adapter.exit_layer}", adapter.num_params()),
    ]
    if "draft" in models:
        d = models["draft"][0]
        rows.append(("draft", f"Llama L={d.config.n_layers}", d.num_params()))
    if "mtp" in models:
        m = models["mtp"][0]
        rows.append(
            ("mtp", f"MultiTokenLlama L={m.config.n_layers} n={m.n_future}", m.num_params())
        )
    for kind, what, params in rows:
        share = "" if kind == "target" else f" ({params / size:.1%} of the target)"
        print(f"  {kind:<8} {what:<34} {params:>9,} params{share}; {models[kind][2]}")
    val = random_batches(load_corpus(split="val"), 8, cfg.seq_len, 1234)
    acc = evaluate_adapter(target, adapter, val, cfg.eval_batches)
    print(
        f"adapter on validation code: soft-CE {acc['soft_ce']:.3f}, expected acceptance "
        f"E[sum min(p, q)] {acc['accept']:.2f}"
    )
    print("teacher-forced top-1 agreement with the verifier on validation code:")
    lines = draft_agreement(
        cfg, target, adapter, models.get("draft", (None,))[0], models.get("mtp", (None,))[0]
    )
    print("\n".join("  " + line for line in lines))


def assisted_counts(hf_target, hf_draft, run, prompts) -> dict:
    """One untimed pass of (d) with forward counters on the HF target and draft."""
    target_calls, untarget = count_forwards(hf_target)
    draft_calls, undraft = count_forwards(hf_draft)
    try:
        tokens = sum(len(run(p)) for p in prompts)
    finally:
        untarget()
        undraft()
    return {"tokens": tokens, "target_forwards": target_calls[0], "draft_forwards": draft_calls[0]}


def tokens_of(out) -> list[int]:
    return out if isinstance(out, list) else out.tokens


def first_difference(a: list[int], b: list[int]) -> int | None:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
        None if len(a) == len(b) else min(len(a), len(b)),
    )


def report(cfg, prompts, timings, assisted, mtp, loads) -> None:
    n, names = cfg.new_tokens, list(timings.seconds)
    tokens = len(prompts) * n
    median = {name: timings.median(name) for name in names}
    out = {name: [tokens_of(o) for o in timings.outputs[name]] for name in names}
    per_forward = {name: "1.00" for name in ("a", "b", "e0") if name in names}
    c = timings.outputs["c"]
    per_forward["c"] = f"{sum(len(r.tokens) for r in c) / sum(r.target_forwards for r in c):.2f}"
    if assisted is not None:
        per_forward["d"] = f"{assisted['tokens'] / assisted['target_forwards']:.2f}"
    if "e" in names:
        e = timings.outputs["e"]
        per_forward["e"] = f"{sum(len(r.tokens) for r in e) / sum(r.forwards for r in e):.2f}"

    print("\nchecks:")
    lengths = {name: sorted({len(o) for o in out[name]}) for name in names}
    bad = {name: lens for name, lens in lengths.items() if lens != [n]}
    print(
        f"  every method produced exactly {n} new tokens per prompt: "
        + ("yes" if not bad else f"NO {bad}")
    )
    identical = {}
    for name, ref in REFERENCE.items():
        if name in names:
            diffs = [first_difference(x, y) for x, y in zip(out[name], out[ref], strict=True)]
            identical[name] = all(d is None for d in diffs)
            where = (
                ""
                if identical[name]
                else (
                    " -- first differing token per prompt: "
                    + ", ".join("-" if d is None else str(d) for d in diffs)
                )
            )
            print(f"  {name} == {ref}: {'yes' if identical[name] else 'NO'}{where}")

    print(
        "\n| method | tokens/s | ms/token | vs (a) | identical to reference | tokens / target "
        "forward |\n|---|---|---|---|---|---|"
    )
    for name in names:
        if name in REFERENCE:
            same = f"{'yes' if identical[name] else 'NO'} ({REFERENCE[name]})"
        else:
            same = "reference" if name == "a" else "reference for (e)"
        print(
            f"| {LABELS[name]} | {tokens / median[name]:.0f} | "
            f"{1000 * median[name] / tokens:.2f} | {median['a'] / median[name]:.2f}x | "
            f"{same} | {per_forward.get(name, '')} |"
        )

    drafted, accepted = sum(r.drafted for r in c), sum(r.accepted for r in c)
    rounds = [k for r in c for k in r.accept_lengths]
    print(
        f"\n(c): {drafted / max(1, len(rounds)):.2f} drafts per round, "
        f"{accepted / max(1, drafted):.0%} accepted, "
        f"{statistics.fmean(rounds or [1]):.2f} tokens per verification"
    )
    if assisted is not None:
        print(
            f"(d): {assisted['draft_forwards'] / assisted['target_forwards']:.2f} draft "
            "forwards per target forward (untimed pass with forward counters)"
        )
    if "e" in names:
        e = timings.outputs["e"]
        forwards = sum(r.forwards for r in e)
        cost = (median["e"] / forwards) / (median["e0"] / tokens)
        rate = sum(r.accepted for r in e) / max(1, sum(r.drafted for r in e))
        print(
            f"(e): {rate:.0%} of drafts accepted; one forward costs {cost:.2f}x an (e0) "
            f"step, so even with every draft accepted (e)/(e0) <= "
            f"{mtp.n_future / cost:.2f}x"
        )
    first = out["a"][0]
    print(
        f"first prompt {ByteTokenizer().decode(prompts[0])!r} -> (a) "
        f"{ByteTokenizer().decode(first)!r}"
    )
    start, timing, end = loads
    print(
        f"load average (1 min): {start[0]:.2f} at start, {timing[0]:.2f} before timing, "
        f"{end[0]:.2f} at the end\n"
    )

    def ratio(x: str, y: str) -> str:
        return f"({x})/({y}) = {median[y] / median[x]:.2f}x"

    print(f"{ratio('c', 'a')} (target >= 1.5; paper 1.68x)")
    if "d" in names:
        print(f"{ratio('c', 'd')} (target > 1: Kangaroo faster than HF assisted generation)")
    if "e" in names:
        print(
            f"{ratio('e', 'a')} (MTP self-speculative vs plain greedy of the target: same "
            "parameter count, different model)"
        )
        print(
            f"{ratio('e', 'e0')} (MTP self-speculative vs its own head-1 greedy; paper ~3x on code)"
        )
    if "b" in names:
        print(f"{ratio('a', 'b')} (ours vs HF generate, same weights: per-step cost)")
        print(f"{ratio('d', 'b')} (HF assisted vs HF greedy)")


if __name__ == "__main__":
    main()
