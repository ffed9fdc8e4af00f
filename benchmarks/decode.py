"""Batch-1 greedy decoding speed on the same trained weights (mtp, arXiv 2404.19737, Sec. 3.2).

  (a) ours, head-1 greedy: core KV-cached `generate` on trunk + head 1 (a plain core `Llama`)
  (b) ours, self-speculative: heads 2..n draft, head 1 verifies in the next forward
  (c) Hugging Face transformers `generate` (greedy, its KV cache) on trunk + head 1 converted
      to `LlamaForCausalLM`

One process, one set of weights. Each repetition runs every prompt through (a), (b), (c) in an
order that rotates between repetitions; figures are medians over repetitions of the summed
time over prompts. All three must produce the same tokens (checked and printed). The model is
a byte-level MultiTokenLlama trained here on the stdlib corpus (the `mtp` claims' recipe), or
loaded from `--ckpt`; prompts are lines of validation code.

    python benchmarks/decode.py                        # train (~1-2 min on 2 cores), then time
    python benchmarks/decode.py --steps 1500 --save /tmp/mtp.safetensors
    python benchmarks/decode.py --ckpt /tmp/mtp.safetensors --reps 9
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time

import torch

from paperlab.papers.mtp.claims import MTPClaimsConfig, byte_model, draft_agreement, val_prompts
from paperlab.papers.mtp.model import MultiTokenLlama
from paperlab.papers.mtp.speculative import greedy_generate, self_speculative_generate


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=600, help="training steps (ignored with --ckpt)")
    p.add_argument("--new-tokens", type=int, default=96)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--n-future", type=int, default=4, help="heads n (head 1 + n-1 drafters)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=8, help="total decoder layers L")
    p.add_argument("--heads", type=int, default=2, help="attention heads")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--ckpt", help="load this MultiTokenLlama .safetensors instead of training")
    p.add_argument("--save", help="write the trained model here (.safetensors)")
    p.add_argument("--no-hf", action="store_true", help="skip (c), e.g. without transformers")
    return p.parse_args()


def get_model(args, cfg: MTPClaimsConfig) -> tuple[MultiTokenLlama, float]:
    if args.ckpt:
        return MultiTokenLlama.from_pretrained(args.ckpt).eval(), 0.0
    start = time.perf_counter()
    model, _ = byte_model(cfg, args.n_future, args.seed, progress=True)
    seconds = time.perf_counter() - start
    if args.save:
        print(f"saved {model.save_pretrained(args.save)}")
    return model, seconds


def hf_greedy(hf_model):
    def run(prompt: list[int], new_tokens: int) -> list[int]:
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = hf_model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=0,
            )
        return out[0, len(prompt) :].tolist()

    return run


def time_methods(methods: dict, prompts: list[list[int]], new_tokens: int, reps: int):
    """{name: [seconds per repetition]}, {name: outputs}, {name: extra stats} (interleaved)."""
    seconds = {name: [] for name in methods}
    outputs, forwards = {}, {}
    names = list(methods)
    for fn in methods.values():  # warm-up
        fn(prompts[0], 8)
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        total = dict.fromkeys(names, 0.0)
        for prompt in prompts:
            for name in order:
                start = time.perf_counter()
                out = methods[name](prompt, new_tokens)
                total[name] += time.perf_counter() - start
                if name == "b":
                    forwards.setdefault(rep, []).append(out.forwards)
                    out = out.tokens
                outputs.setdefault(name, {})[tuple(prompt)] = out
        for name in names:
            seconds[name].append(total[name])
    return seconds, outputs, forwards


def main() -> None:
    args = parse_args()
    print("$ python " + shlex.join(sys.argv))
    cfg = MTPClaimsConfig(
        dim=args.dim,
        n_layers=args.layers,
        n_heads=args.heads,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        steps=args.steps,
        lr=args.lr,
        prompts=args.prompts,
        prompt_len=args.prompt_len,
    )
    if args.prompt_len + args.new_tokens > args.seq_len:
        print(
            f"note: prompt + new tokens > trained seq_len {args.seq_len}: beyond it the model "
            "extrapolates positions and its output degrades"
        )
    load_start = os.getloadavg()[0]
    if args.threads:  # one thread: no OpenMP barrier stalls when the cores are shared
        torch.set_num_threads(args.threads)
    model, train_s = get_model(args, cfg)
    prompts = val_prompts(cfg)
    methods = {
        "a": lambda p, n: greedy_generate(model, p, max_new_tokens=n),
        "b": lambda p, n: self_speculative_generate(model, p, max_new_tokens=n),
    }
    if not args.no_hf:
        from paperlab.core.hf import to_hf_model

        methods["c"] = hf_greedy(to_hf_model(model.llama))
    seconds, outputs, forwards = time_methods(methods, prompts, args.new_tokens, args.reps)
    report(args, model, prompts, seconds, outputs, forwards, train_s, load_start)


def report(args, model, prompts, seconds, outputs, forwards, train_s, load_start) -> None:
    import transformers

    tokens = len(prompts) * args.new_tokens
    median = {name: statistics.median(s) for name, s in seconds.items()}
    n_forwards = statistics.median(sum(f) for f in forwards.values())
    plain_ms = 1000 * median["a"] / tokens  # one plain decoding step
    forward_ms = 1000 * median["b"] / n_forwards  # one self-speculative forward
    agreement = draft_agreement(model, MTPClaimsConfig(seq_len=args.seq_len))
    cfg = model.config
    print(f"\nmodel: MultiTokenLlama dim={cfg.dim} L={cfg.n_layers} n={cfg.n_future} "
          f"({model.num_params():,} params), "
          + (f"loaded from {args.ckpt}" if args.ckpt else f"trained {train_s:.0f} s")
          + f"; {len(prompts)} prompts x "
          f"{args.new_tokens} new tokens, {args.reps} reps; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), load average {load_start:.1f} -> "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"(b): {tokens / n_forwards:.2f} tokens per forward; one forward costs "
          f"{forward_ms / plain_ms:.2f}x a plain step, so with every draft accepted "
          f"(b)/(a) <= {cfg.n_future * plain_ms / forward_ms:.2f}x")  # fmt: skip
    print("teacher-forced agreement of heads 2..n with head 1 on validation code: "
          + ", ".join(f"{a:.2f}" for a in agreement) + "\n")  # fmt: skip
    label = {"a": "(a) ours: head-1 greedy, KV cache", "b": "(b) ours: self-speculative",
             "c": f"(c) HF transformers {transformers.__version__} generate"}  # fmt: skip
    print("| method | tokens/s | ms/token | vs (a) | identical to (a) |")
    print("|---|---|---|---|---|")
    for name in seconds:
        same = all(outputs[name][k] == outputs["a"][k] for k in outputs["a"])
        print(f"| {label[name]} | {tokens / median[name]:.0f} | "
              f"{1000 * median[name] / tokens:.2f} | {median['a'] / median[name]:.2f}x | "
              f"{'yes' if same else 'NO'} |")  # fmt: skip
    first = outputs["a"][tuple(prompts[0])]
    print(f"\nfirst prompt {bytes(prompts[0]).decode(errors='replace')!r} -> (a) "
          f"{bytes(t for t in first if t < 256).decode(errors='replace')!r}")  # fmt: skip
    print(f"\n(b)/(a) = {median['a'] / median['b']:.2f}x (target >= 2.5; paper ~3x on code)")
    if "c" in median:
        print(f"(a)/(c) = {median['c'] / median['a']:.2f}x (target >= 1)")


if __name__ == "__main__":
    main()
