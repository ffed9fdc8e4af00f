"""`paperlab irpo train|eval`: Iterative RPO on the chain-arithmetic task.

paperlab irpo train --out runs/irpo --iterations 3          # SFT M0, then 3 iterations
paperlab irpo train --out runs/irpo --iterations 4 --resume # continue at the last boundary
paperlab irpo eval runs/irpo/iter_3.safetensors --problems 500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from paperlab.claims import UserError

EPILOG = """examples:
  paperlab irpo train --out runs/irpo --iterations 3
  paperlab irpo train --out runs/irpo --iterations 4 --resume
  paperlab irpo train --out runs/dpo-only --alpha 0 --init runs/irpo/iter_0.safetensors
  paperlab irpo eval runs/irpo/iter_3.safetensors --problems 500 --maj-k 16
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "irpo",
        help="Iterative RPO: DPO + NLL on the model's own CoT samples",
        description="Iterative Reasoning Preference Optimization (arXiv 2404.19733) on "
        "multi-step arithmetic with a chain of thought, with a tiny core Llama.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(dest="irpo_command", metavar="train|eval", required=True)
    t = cmds.add_parser(
        "train",
        help="run Iterative RPO, one checkpoint per iteration",
        description="Writes OUT/iter_<t>.safetensors (t = 0 is M0) and OUT/history.json at "
        "every iteration boundary. Ctrl-C keeps the finished iterations; --resume continues.",
    )
    t.add_argument("--out", type=Path, required=True, help="folder for the checkpoints")
    t.add_argument("--resume", action="store_true", help="continue the iterations in --out")
    t.add_argument("--init", type=Path, help="M0 checkpoint (default: SFT a fresh M0 here)")
    t.add_argument("--iterations", type=int, default=3, help="iterations T (3)")
    t.add_argument("--samples", type=int, default=8, help="N completions per problem (8)")
    t.add_argument("--pairs", type=int, default=4, help="K pairs per problem at most (4)")
    t.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (0.8)")
    t.add_argument("--beta", type=float, default=0.1, help="DPO beta (0.1)")
    t.add_argument("--alpha", type=float, default=1.0, help="NLL weight; 0 = DPO alone (1)")
    t.add_argument(
        "--nll",
        choices=("sequence", "tokens"),
        default="sequence",
        help="NLL normalisation: per sequence (the paper) or over the batch's tokens (TRL)",
    )
    t.add_argument("--steps", type=int, default=150, help="optimizer steps per iteration (150)")
    t.add_argument("--batch-size", type=int, default=32, help="pairs per step (32)")
    t.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (2e-4)")
    t.add_argument("--lora-rank", type=int, default=0, help="> 0: LoRA adapters via peft (0)")
    t.add_argument("--train-problems", type=int, default=2000, help="problems sampled on (2000)")
    t.add_argument("--test-problems", type=int, default=300, help="held-out problems (300)")
    t.add_argument("--sft-examples", type=int, default=2000, help="gold CoTs for M0 (2000)")
    t.add_argument("--sft-steps", type=int, default=400, help="SFT steps for M0 (400)")
    _common(t)
    e = cmds.add_parser("eval", help="greedy and maj@k accuracy of a checkpoint")
    e.add_argument("checkpoint", type=Path, help="an iter_<t>.safetensors file")
    e.add_argument("--problems", type=int, default=300, help="held-out problems (300)")
    e.add_argument("--maj-k", type=int, default=8, help="samples for the majority vote (8)")
    e.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (0.8)")
    _common(e)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed of problems, sampling, training (0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _problems(args: argparse.Namespace) -> dict[str, list]:
    from types import SimpleNamespace

    from paperlab.papers.irpo.experiments import _problems as split

    for name in ("train_problems", "test_problems", "sft_examples"):
        if getattr(args, name, 1) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1 (an empty problem set)")
    cfg = SimpleNamespace(
        sft_examples=getattr(args, "sft_examples", 2000),  # eval: the train command's split
        train_problems=getattr(args, "train_problems", 2000),
        test_problems=args.test_problems,
        chain_steps=3,
        max_operand=9,
    )
    return split(cfg, args.seed)


def _train(args: argparse.Namespace, device: str) -> int:
    import torch

    from paperlab.papers.irpo.irpo import (
        IRPOConfig,
        iterative_rpo,
        last_iteration,
        load_iteration,
        sft,
        tiny_llama,
    )

    cfg = IRPOConfig(
        iterations=args.iterations,
        samples=args.samples,
        pairs=args.pairs,
        temperature=args.temperature,
        beta=args.beta,
        alpha=args.alpha,
        nll=args.nll,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        lora_rank=args.lora_rank,
    )
    if args.sft_steps < 1:
        raise UserError(f"--sft-steps must be >= 1, got {args.sft_steps}")
    data = _problems(args)
    resuming = args.resume and last_iteration(args.out) is not None
    if args.init is not None:
        model = load_iteration(args.init, device=device)
    elif resuming:
        model = tiny_llama()  # replaced by the last checkpoint in --out
    else:
        torch.manual_seed(args.seed)
        model = tiny_llama()
        sft(
            model,
            data["sft"],
            steps=args.sft_steps,
            seed=args.seed,
            device=device,
            progress=not args.no_progress,
        )

    def report(t: int, _model: Any, rec: dict) -> None:
        print(
            f"M{t}: greedy {rec['greedy_acc']:.3f}, maj@{cfg.maj_k} {rec['maj_acc']:.3f}, "
            f"{rec['n_pairs']:.0f} pairs ({rec['pair_fraction']:.2f} of problems)",
            file=sys.stderr,
        )

    try:
        result = iterative_rpo(
            model,
            data["train"],
            cfg,
            eval_problems=data["test"],
            out_dir=args.out,
            resume=args.resume,
            seed=args.seed,
            device=device,
            progress=not args.no_progress,
            on_iteration=report,
        )
    except KeyboardInterrupt:
        last = last_iteration(args.out)
        print(f"paperlab: interrupted; iterations up to {last} are in {args.out}", file=sys.stderr)
        return 130
    h = result.history
    print(
        "greedy accuracy per iteration: "
        + " -> ".join(f"{r['greedy_acc']:.3f}" for r in h)
        + f"; checkpoints in {args.out}"
    )
    return 0


def _eval(args: argparse.Namespace, device: str) -> int:
    from paperlab.papers.irpo.irpo import evaluate, load_iteration

    if args.problems < 1 or args.maj_k < 1:
        raise UserError("--problems and --maj-k must be >= 1")
    if args.temperature <= 0:
        raise UserError(f"--temperature must be > 0, got {args.temperature}")
    model = load_iteration(args.checkpoint, device=device)
    args.test_problems = args.problems
    problems = _problems(args)["test"]
    r = evaluate(model, problems, k=args.maj_k, temperature=args.temperature, seed=args.seed)
    print(
        f"greedy {r['greedy_acc']:.3f}, maj@{args.maj_k} {r['maj_acc']:.3f}, "
        f"single sample {r['sample_acc']:.3f} on {len(problems)} problems"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    from paperlab.core.device import resolve_device

    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise UserError(str(e)) from None
    try:
        if args.irpo_command == "train":
            return _train(args, device)
        return _eval(args, device)
    except ValueError as e:  # a malformed checkpoint or argument: one line
        raise UserError(str(e)) from None
