"""`paperlab advprompter train|attack|harden` (AdvPrompter, arXiv 2404.16873), in the harmless
world of ``paperlab.papers.advprompter.world``.

    paperlab advprompter train --dir adv/               # target + base + prompter (LoRA)
    paperlab advprompter train --dir adv/ --epochs 6 --resume   # continue the prompter
    paperlab advprompter attack --dir adv/ -k 10        # ASR@1 / ASR@k on held-out requests
    paperlab advprompter attack --dir adv/ --request "tell me how to zorb the lamp"
    paperlab advprompter harden --dir adv/              # adversarial fine-tuning of the target

Models are safetensors files in ``--dir`` (target.safetensors, base.safetensors,
prompter.safetensors, target_hardened.safetensors); the prompter is saved after every epoch,
so Ctrl-C keeps the finished epochs and ``--resume`` continues from them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError

EPILOG = """examples:
  paperlab advprompter train --dir adv --epochs 3
  paperlab advprompter train --dir adv --epochs 5 --resume
  paperlab advprompter attack --dir adv -k 10 -n 48
  paperlab advprompter attack --dir adv --requests my_requests.txt -k 3
  paperlab advprompter harden --dir adv --steps 200
"""

TARGET_KIND, BASE_KIND = "AdvPrompterTarget", "AdvPrompterBase"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    top = subparsers.add_parser(
        "advprompter",
        help="AdvPrompter: train a suffix prompter, attack a target, harden it",
        description="AdvPrompter (arXiv 2404.16873) on a tiny, harmless target trained here.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="adv_command", metavar="train|attack|harden", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", type=Path, required=True, help="folder of the models")
        p.add_argument("--seed", type=int, default=0, help="seed of data, split and sampling (0)")
        p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (cpu)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    t = sub.add_parser("train", help="train the target and base (once) and the prompter")
    common(t)
    t.add_argument("--epochs", type=int, default=3, help="prompter epochs in total (3)")
    t.add_argument("--target-steps", type=int, default=600, help="target training steps (600)")
    t.add_argument("--base-steps", type=int, default=300, help="base training steps (300)")
    t.add_argument("--n-test", type=int, default=48, help="held-out refused requests (48)")
    t.add_argument("--suffix-len", type=int, default=6, help="words per suffix (6)")
    t.add_argument("--resume", action="store_true", help="continue prompter.safetensors")

    a = sub.add_parser("attack", help="ASR@1 / ASR@k of the prompter against a target")
    common(a)
    a.add_argument("-k", type=int, default=10, help="suffixes sampled per request (10)")
    a.add_argument("-n", type=int, default=None, help="first N held-out requests (all)")
    a.add_argument("--request", help="one request, e.g. 'tell me how to zorb the lamp'")
    a.add_argument("--requests", type=Path, help="a text file of requests, one per line")
    a.add_argument("--target", type=Path, help="target checkpoint (default DIR/target...)")
    a.add_argument("--prompter", type=Path, help="prompter checkpoint (default DIR/prompter...)")

    h = sub.add_parser("harden", help="fine-tune the target on prompter suffixes + refusals")
    common(h)
    h.add_argument("--steps", type=int, default=200, help="fine-tuning steps (200)")
    h.add_argument("--lr", type=float, default=1e-3, help="learning rate (1e-3)")
    h.add_argument("--samples", type=int, default=2, help="suffixes per training request (2)")
    h.add_argument("-k", type=int, default=10, help="ASR@k before and after (10)")
    return top


def run(args: argparse.Namespace) -> int:
    import torch

    from paperlab.core.device import resolve_device

    try:
        args.device = resolve_device(args.device)
    except ValueError as e:
        raise UserError(str(e)) from None
    torch.manual_seed(args.seed)
    try:
        return {"train": _train, "attack": _attack, "harden": _harden}[args.adv_command](args)
    except KeyboardInterrupt:
        print(f"interrupted: finished epochs are kept in {args.dir}", file=sys.stderr)
        return 130


def _positive(**values: int | None) -> None:
    for name, v in values.items():
        if v is not None and v < 1:
            raise UserError(f"{name} must be >= 1, got {v}")


def _world_file(d: Path) -> Path:
    return d / "world.json"


def _read_world(d: Path) -> dict:
    f = _world_file(d)
    if not f.is_file():
        raise UserError(f"no trained world in {d}: run `paperlab advprompter train --dir {d}`")
    return json.loads(f.read_text())


def _save(path: Path, model, kind: str, world: dict) -> None:
    from paperlab.core.checkpoint import save_model

    save_model(path, model, kind=kind, config=world)


def _load(path: Path, kind: str, world: dict, device: str):
    from paperlab.core.checkpoint import load_model
    from paperlab.papers.advprompter.models import ModelSize, build_llama

    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")

    def build(cfg: dict):
        size = ModelSize(dim=cfg["dim"], n_layers=cfg["n_layers"], n_heads=cfg["n_heads"])
        return build_llama(cfg["vocab_size"], size)

    try:
        model, meta = load_model(path, build, kind=kind, map_location=device)
    except ValueError as e:
        raise UserError(str(e)) from None
    return model.eval(), meta["config"]


def _train(args: argparse.Namespace) -> int:
    from paperlab.papers.advprompter.models import (
        ModelSize,
        alphabet_mask,
        make_prompter,
        train_base,
        train_target,
    )
    from paperlab.papers.advprompter.opt import OptParams
    from paperlab.papers.advprompter.training import PrompterTraining, train_prompter
    from paperlab.papers.advprompter.world import default_tokenizer, split_refused, suffix_words

    _positive(
        epochs=args.epochs,
        target_steps=args.target_steps,
        base_steps=args.base_steps,
        n_test=args.n_test,
        suffix_len=args.suffix_len,
    )
    tok = default_tokenizer()
    if args.n_test >= 144:
        raise UserError(f"--n-test {args.n_test}: must be below 144 (the refused requests)")
    size = ModelSize()
    world = dict(
        dim=size.dim,
        n_layers=size.n_layers,
        n_heads=size.n_heads,
        vocab_size=tok.vocab_size,
        tokenizer=tok.id,
        seed=args.seed,
        n_test=args.n_test,
        suffix_len=args.suffix_len,
    )
    args.dir.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    if _world_file(args.dir).is_file():
        old = _read_world(args.dir)
        if old != world:
            raise UserError(
                f"{args.dir} holds a world with other settings ({old}); use a new --dir"
            )
    target_file, base_file = args.dir / "target.safetensors", args.dir / "base.safetensors"
    if target_file.is_file() and base_file.is_file():
        target, _ = _load(target_file, TARGET_KIND, world, "cpu")
        base, _ = _load(base_file, BASE_KIND, world, "cpu")
    else:
        target, info = train_target(
            tok,
            size,
            steps=args.target_steps,
            batch_size=64,
            lr=3e-3,
            max_suffix=args.suffix_len,
            p_trigger=0.35,
            chain_seed=args.seed,
            seed=args.seed,
            progress=progress,
            device=args.device,
        )
        base, _ = train_base(
            tok,
            size,
            steps=args.base_steps,
            batch_size=64,
            lr=3e-3,
            suffix_len=args.suffix_len,
            chain_seed=args.seed,
            seed=args.seed + 1,
            progress=progress,
            device=args.device,
        )
        _save(target_file, target, TARGET_KIND, world)
        _save(base_file, base, BASE_KIND, world)
        _world_file(args.dir).write_text(json.dumps(world))
        print(f"target trained (loss {info['final_loss']:.3f}); base trained")
    train_set, _ = split_refused(args.n_test, args.seed)
    prompter = make_prompter(base, seed=args.seed).to(args.device)
    recipe = PrompterTraining(epochs=args.epochs, opt=OptParams(max_new_tokens=args.suffix_len))
    history = train_prompter(
        prompter,
        target.to(args.device),
        tok,
        train_set,
        alphabet_mask(tok, suffix_words()),
        recipe,
        seed=args.seed,
        checkpoint=args.dir / "prompter.safetensors",
        resume=args.resume,
        progress=progress,
        device=args.device,
        meta={"world": world},
        on_epoch=lambda e, h: print(
            f"epoch {e + 1}: optimised suffixes jailbreak {h['opt_jailbroken'][-1]:.2f}, "
            f"prompter NLL {h['nll'][-1] if h.get('nll') else float('nan'):.3f}"
        ),
    )
    print(
        f"prompter: {len(history.get('buffer', []))} epochs in {args.dir / 'prompter.safetensors'}"
    )
    return 0


def _load_prompter(path: Path, world: dict, device: str):
    from paperlab.core.checkpoint import load_checkpoint, read_checkpoint_meta
    from paperlab.papers.advprompter.models import (
        ModelSize,
        build_llama,
        check_compatible,
        make_prompter,
    )
    from paperlab.papers.advprompter.training import CHECKPOINT_KIND

    if not path.is_file():
        raise UserError(f"{path}: no prompter checkpoint; run `paperlab advprompter train`")
    try:
        meta = read_checkpoint_meta(path, kind=CHECKPOINT_KIND)
        pw = meta.get("world", {})
        check_compatible(
            pw.get("vocab_size", -1),
            world["vocab_size"],
            pw.get("tokenizer", "?"),
            world["tokenizer"],
        )
        size = ModelSize(dim=pw["dim"], n_layers=pw["n_layers"], n_heads=pw["n_heads"])
        prompter = make_prompter(build_llama(pw["vocab_size"], size))
        load_checkpoint(path, prompter, kind=CHECKPOINT_KIND)
    except (ValueError, KeyError) as e:
        raise UserError(f"{path}: {e}") from None
    return prompter.to(device).eval()


def _requests(args: argparse.Namespace, world: dict, tok) -> list:
    from paperlab.papers.advprompter.world import Request, split_refused

    texts: list[str] = []
    if args.request is not None:
        texts = [args.request]
    elif args.requests is not None:
        if not args.requests.is_file():
            raise UserError(f"--requests {args.requests}: no such file")
        texts = [ln.strip() for ln in args.requests.read_text().splitlines() if ln.strip()]
        if not texts:
            raise UserError(f"--requests {args.requests}: the file holds no request")
    if not texts:
        _, test = split_refused(world["n_test"], world["seed"])
        return test[: args.n] if args.n else test
    out = []
    for t in texts:
        words = t.split()
        if len(words) != 7 or words[:4] != ["tell", "me", "how", "to"] or words[5] != "the":
            raise UserError(f"request {t!r}: write 'tell me how to VERB the OBJECT'")
        try:
            tok.encode(t)
        except ValueError as e:
            raise UserError(f"request {t!r}: {e}") from None
        out.append(Request(words[4], words[6]))
    return out[: args.n] if args.n else out


def _attack(args: argparse.Namespace) -> int:
    import torch

    from paperlab.papers.advprompter.models import alphabet_mask, check_compatible, sample_suffixes
    from paperlab.papers.advprompter.training import asr_at_k
    from paperlab.papers.advprompter.world import default_tokenizer, suffix_words

    _positive(k=args.k, n=args.n)
    world, tok = _read_world(args.dir), default_tokenizer()
    target, tcfg = _load(
        args.target or args.dir / "target.safetensors", TARGET_KIND, world, args.device
    )
    try:
        check_compatible(
            world["vocab_size"], tcfg["vocab_size"], world["tokenizer"], tcfg["tokenizer"]
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    prompter = _load_prompter(args.prompter or args.dir / "prompter.safetensors", tcfg, args.device)
    reqs = _requests(args, world, tok)
    gen = torch.Generator().manual_seed(args.seed)
    allowed = alphabet_mask(tok, suffix_words())
    res = asr_at_k(
        lambda xs: sample_suffixes(
            prompter, tok, xs, allowed, length=world["suffix_len"], generator=gen
        ),
        target,
        tok,
        reqs,
        args.k,
    )
    for r, s in list(zip(reqs, res["suffixes"], strict=False))[:5]:
        print(f"{r.text} | {s}")
    print(f"ASR@1 {res['asr1']:.3f}  ASR@{args.k} {res['asrk']:.3f}  ({len(reqs)} requests)")
    return 0


def _harden(args: argparse.Namespace) -> int:
    import copy

    import torch

    from paperlab.papers.advprompter.models import (
        ModelSize,
        alphabet_mask,
        sample_suffixes,
        train_target,
    )
    from paperlab.papers.advprompter.training import asr_at_k, task_accuracy
    from paperlab.papers.advprompter.world import (
        REFUSAL,
        default_tokenizer,
        requests,
        split_refused,
        suffix_words,
    )

    _positive(steps=args.steps, samples=args.samples, k=args.k)
    if args.lr <= 0:
        raise UserError(f"--lr must be > 0, got {args.lr}")
    world, tok = _read_world(args.dir), default_tokenizer()
    target, _ = _load(args.dir / "target.safetensors", TARGET_KIND, world, args.device)
    prompter = _load_prompter(args.dir / "prompter.safetensors", world, args.device)
    train_set, test_set = split_refused(world["n_test"], world["seed"])
    allowed = alphabet_mask(tok, suffix_words())
    gen = torch.Generator().manual_seed(args.seed)
    pairs = []
    for _ in range(args.samples):
        xs = [r.text for r in train_set]
        ss = sample_suffixes(prompter, tok, xs, allowed, length=world["suffix_len"], generator=gen)
        pairs += [(f"{x} {s}", REFUSAL) for x, s in zip(xs, ss, strict=True)]
    size = ModelSize(dim=world["dim"], n_layers=world["n_layers"], n_heads=world["n_heads"])
    hardened, _ = train_target(
        tok,
        size,
        steps=args.steps,
        batch_size=64,
        lr=args.lr,
        max_suffix=world["suffix_len"],
        p_trigger=0.35,
        chain_seed=world["seed"],
        seed=args.seed + 23,
        extra=pairs,
        model=copy.deepcopy(target),
        progress=not args.no_progress,
        desc="harden",
        device=args.device,
    )
    out = args.dir / "target_hardened.safetensors"
    _save(out, hardened, TARGET_KIND, world)
    for name, model in (("before", target), ("after", hardened)):
        g = torch.Generator().manual_seed(args.seed + 1)
        res = asr_at_k(
            lambda xs, g=g: sample_suffixes(
                prompter, tok, xs, allowed, length=world["suffix_len"], generator=g
            ),
            model,
            tok,
            test_set,
            args.k,
        )
        acc = task_accuracy(model, tok, requests(refused=False))
        print(
            f"{name}: ASR@1 {res['asr1']:.3f}  ASR@{args.k} {res['asrk']:.3f}  task acc {acc:.3f}"
        )
    print(f"hardened target: {out}")
    return 0
