"""Iterative Reasoning Preference Optimization (Pang et al. 2024, arXiv 2404.19733), Sec. 2.

One iteration t (Fig. 1 of the paper):

1. *CoT & answer generation*: sample ``samples`` (N) chain-of-thought + answer completions per
   training problem from M_t at ``temperature``; a completion whose final answer matches the
   gold answer is a winner, any other a loser (Sec. 2, "reward model": exact match).
2. *Preference pairs*: up to ``pairs`` (K) (winner, loser) pairs per problem, drawn at random
   from all winner x loser combinations; problems with no winner or no loser give none.
3. *Training*: M_{t+1} starts from M_t and is trained on the pairs with DPO + alpha * NLL
   (:func:`paperlab.papers.irpo.loss.dpo_nll_loss`), reference model M_t (frozen).

:func:`iterative_rpo` runs T iterations, evaluates greedy and majority-vote accuracy after each,
and writes ``iter_<t>.safetensors`` and ``history.json`` at every iteration boundary, so an
interrupted run keeps its finished iterations and ``resume=True`` continues from the last one.
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from paperlab.core.checkpoint import load_model, save_model
from paperlab.core.errors import UserError
from paperlab.core.files import write_text_atomic
from paperlab.core.generate import generate
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.stats import majority
from paperlab.core.train import TrainConfig, eval_mode, train
from paperlab.papers.irpo.loss import NLL_MODES, dpo_nll_loss, token_logps
from paperlab.papers.irpo.task import BOS, EOS, PAD, TOKENIZER, ChainProblem, final_answer

KIND = "irpo-llama"  # checkpoint kind of a model in an Iterative RPO run
MAX_NEW_TOKENS = 34  # the longest gold completion (3 steps) is 32 characters + EOS


def tiny_llama(*, dim: int = 64, n_layers: int = 2, n_heads: int = 4) -> Llama:
    """The miniature policy: a core Llama over the task's character vocabulary."""
    return Llama(tiny_llama_config(dim=dim, n_layers=n_layers, n_heads=n_heads))


def tiny_llama_config(*, dim: int = 64, n_layers: int = 2, n_heads: int = 4) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=TOKENIZER.vocab_size,
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        multiple_of=32,
        max_seq_len=64,
    )


# ---------------------------------------------------------------------------------------------
# Batches: prompt + completion, the loss on the completion only


def encode_prompt(problem: ChainProblem) -> list[int]:
    return [BOS, *TOKENIZER.encode(problem.prompt)]


def collate(prompts: Sequence[list[int]], completions: Sequence[list[int]]) -> dict[str, Any]:
    """Right-padded ``input_ids`` (B, L-1), the next-token ``labels`` and the completion
    ``mask`` (1 where the label is a completion token, EOS included)."""
    seqs = [p + c for p, c in zip(prompts, completions, strict=True)]
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.float32)
    for row, (p, s) in enumerate(zip(prompts, seqs, strict=True)):
        ids[row, : len(s)] = torch.tensor(s)
        mask[row, len(p) : len(s)] = 1.0
    return {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "mask": mask[:, 1:]}


def completion_logps(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """Per-token log-probs (B, L) of the completion tokens (0 elsewhere)."""
    logits = model(batch["input_ids"])
    return token_logps(logits, batch["labels"], batch["mask"])


# ---------------------------------------------------------------------------------------------
# M0: supervised fine-tuning on a few gold chains of thought


def sft(
    model: Llama,
    problems: Sequence[ChainProblem],
    *,
    steps: int,
    lr: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, list[float]]:
    """Train ``model`` in place on the gold solutions of ``problems`` (NLL of the completion)."""
    if not problems:
        raise UserError("sft: the problem set is empty")
    prompts = [encode_prompt(p) for p in problems]
    golds = [[*TOKENIZER.encode(p.solution), EOS] for p in problems]

    def batch(step: int) -> dict[str, Any]:
        rng = random.Random(seed * 100_003 + step)
        rows = [rng.randrange(len(problems)) for _ in range(batch_size)]
        return collate([prompts[i] for i in rows], [golds[i] for i in rows])

    def loss_fn(m: torch.nn.Module, b: dict[str, Any]) -> torch.Tensor:
        return -(completion_logps(m, b).sum() / b["mask"].sum())

    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=max(1, steps // 10),
        weight_decay=0.1,
        seed=seed,
        progress=progress,
        log_every=max(1, steps // 50),
        desc="sft M0",
    )
    history = train(model, loss_fn, batch, cfg, device=device)
    model.eval()
    return history


# ---------------------------------------------------------------------------------------------
# Step 1: sampling


@torch.no_grad()
def sample_completions(
    model: Llama,
    problems: Sequence[ChainProblem],
    *,
    n: int,
    temperature: float,
    seed: int,
    chunk: int = 1024,
) -> list[list[str]]:
    """``n`` completions per problem (temperature 0 = greedy, then all ``n`` are the same)."""
    if n < 1:
        raise UserError(f"samples must be >= 1, got {n}")
    device = model.embed_tokens.weight.device
    generator = torch.Generator(device=device).manual_seed(seed)
    prompts = [encode_prompt(p) for p in problems for _ in range(n)]
    texts: list[str] = []
    for i in range(0, len(prompts), chunk):
        out = generate(
            model,
            prompts[i : i + chunk],
            max_new_tokens=MAX_NEW_TOKENS,
            temperature=temperature,
            stop_tokens=(EOS,),
            generator=generator if temperature > 0 else None,
            pad_token_id=PAD,
        )
        texts.extend(TOKENIZER.decode(ids) for ids in out)
    return [texts[k * n : (k + 1) * n] for k in range(len(problems))]


# ---------------------------------------------------------------------------------------------
# Step 2: preference pairs


@dataclass(frozen=True)
class Pair:
    prompt: list[int]
    chosen: list[int]  # completion ids, EOS included
    rejected: list[int]


def build_pairs(
    problems: Sequence[ChainProblem],
    completions: Sequence[Sequence[str]],
    *,
    k: int,
    seed: int,
) -> tuple[list[Pair], dict[str, float]]:
    """Up to ``k`` (winner, loser) pairs per problem, drawn at random without replacement from
    all winner x loser combinations (Sec. 2). Returns the pairs and sampling figures:
    ``sample_acc`` (fraction of correct samples), ``pair_fraction`` (problems with >= 1 pair),
    ``n_pairs``."""
    if k < 1:
        raise UserError(f"pairs must be >= 1, got {k}")
    rng = random.Random(seed)
    pairs: list[Pair] = []
    correct = total = with_pair = 0
    for problem, texts in zip(problems, completions, strict=True):
        wins = [t for t in dict.fromkeys(texts) if _correct(problem, t)]
        losses = [t for t in dict.fromkeys(texts) if not _correct(problem, t)]
        correct += sum(_correct(problem, t) for t in texts)
        total += len(texts)
        combos = [(w, lo) for w in wins for lo in losses]
        if not combos:
            continue
        with_pair += 1
        prompt = encode_prompt(problem)
        for w, lo in rng.sample(combos, min(k, len(combos))):
            pairs.append(Pair(prompt, [*TOKENIZER.encode(w), EOS], [*TOKENIZER.encode(lo), EOS]))
    stats = {
        "sample_acc": correct / max(1, total),
        "pair_fraction": with_pair / max(1, len(problems)),
        "n_pairs": float(len(pairs)),
    }
    return pairs, stats


def _correct(problem: ChainProblem, text: str) -> bool:
    ans = final_answer(text)
    return ans is not None and int(ans) == int(problem.answer)


# ---------------------------------------------------------------------------------------------
# Step 3: DPO + NLL against the frozen M_t


def pair_batch(pairs: Sequence[Pair]) -> dict[str, Any]:
    """Winners then losers in one batch (2B rows), as TRL's DPOTrainer concatenates them."""
    prompts = [p.prompt for p in pairs] * 2
    completions = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    return collate(prompts, completions)


@torch.no_grad()
def sequence_logps(model: Llama, pairs: Sequence[Pair], chunk: int = 512) -> torch.Tensor:
    """Summed log-probs (2P,) of the winners then the losers of ``pairs`` under ``model``."""
    chosen, rejected = [], []
    device = model.embed_tokens.weight.device
    with eval_mode(model):
        for i in range(0, len(pairs), chunk):
            b = {k: v.to(device) for k, v in pair_batch(pairs[i : i + chunk]).items()}
            c, r = completion_logps(model, b).sum(-1).chunk(2)
            chosen.append(c)
            rejected.append(r)
    return torch.cat(chosen + rejected)


def preference_step(
    model: torch.nn.Module,
    batch: dict[str, Any],
    *,
    beta: float,
    alpha: float,
    nll: str,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch from :func:`pair_batch` plus ``ref_logps`` (2B,)."""
    logps = completion_logps(model, batch)
    chosen, rejected = logps.chunk(2)
    mask_c, mask_r = batch["mask"].chunk(2)
    ref_c, ref_r = batch["ref_logps"].chunk(2)
    kw = dict(beta=beta, alpha=alpha, nll=nll)
    return dpo_nll_loss(chosen, rejected, mask_c, mask_r, ref_c, ref_r, **kw)


@dataclass
class IRPOConfig:
    """The knobs of an Iterative RPO run (paper values in brackets, Sec. 3.1)."""

    iterations: int = 3  # T [4 on GSM8K]
    samples: int = 8  # N completions per problem [30]
    pairs: int = 4  # K pairs per problem [10]
    temperature: float = 0.8  # sampling temperature [0.8]
    beta: float = 0.1  # DPO's beta [0.1]
    alpha: float = 1.0  # weight of the NLL term [1]; 0 = DPO alone
    nll: str = "sequence"  # "sequence" (the paper) or "tokens" (TRL's batch-token average)
    steps: int = 150  # optimizer steps per iteration
    batch_size: int = 32  # pairs per step
    lr: float = 2e-4  # higher rates collapse the tiny policy under the DPO term
    maj_k: int = 8  # samples for majority-vote accuracy
    lora_rank: int = 0  # > 0: train LoRA adapters (peft) and merge them after each iteration

    def __post_init__(self) -> None:
        for name in ("iterations", "samples", "pairs", "steps", "batch_size", "maj_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{name} must be a positive integer, got {value!r}")
        if self.nll not in NLL_MODES:
            raise UserError(f"nll={self.nll!r}: choose one of {', '.join(NLL_MODES)}")
        if self.temperature <= 0:
            raise UserError(f"temperature must be > 0 to sample N answers, got {self.temperature}")
        if self.beta <= 0 or self.alpha < 0 or self.lr <= 0:
            raise UserError("beta and lr must be > 0 and alpha >= 0")
        if self.lora_rank < 0:
            raise UserError(f"lora_rank must be >= 0, got {self.lora_rank}")


def train_iteration(
    model: Llama,
    pairs: Sequence[Pair],
    cfg: IRPOConfig,
    *,
    seed: int,
    device: str = "cpu",
    progress: bool = False,
    desc: str = "irpo",
) -> tuple[Llama, dict[str, list[float]]]:
    """M_{t+1} from M_t = ``model`` (left untouched) on ``pairs``, reference M_t."""
    if not pairs:
        raise UserError("no preference pairs: every problem's samples were all right or all wrong")
    ref_logps = sequence_logps(model, pairs)  # M_t is frozen: its log-probs once, up front
    P = len(pairs)
    policy = copy.deepcopy(model)
    trained = _with_lora(policy, cfg.lora_rank) if cfg.lora_rank else policy

    def batch(step: int) -> dict[str, Any]:
        rng = random.Random(seed * 7919 + step)
        rows = [rng.randrange(P) for _ in range(min(cfg.batch_size, P))]
        b = pair_batch([pairs[i] for i in rows])
        b["ref_logps"] = torch.cat([ref_logps[rows], ref_logps[[P + i for i in rows]]])
        return b

    def loss_fn(m: torch.nn.Module, b: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        return preference_step(m, b, beta=cfg.beta, alpha=cfg.alpha, nll=cfg.nll)

    tcfg = TrainConfig(
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=max(1, cfg.steps // 10),
        weight_decay=0.0,
        seed=seed,
        progress=progress,
        desc=desc,
    )
    history = train(trained, loss_fn, batch, tcfg, device=device)
    if cfg.lora_rank:
        policy = trained.merge_and_unload()
    return policy.eval(), history


def _with_lora(model: Llama, rank: int) -> torch.nn.Module:
    """LoRA adapters (peft) on every projection; the rest frozen."""
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets)
    return get_peft_model(model, config)


# ---------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate(
    model: Llama, problems: Sequence[ChainProblem], *, k: int, temperature: float, seed: int
) -> dict[str, Any]:
    """Greedy accuracy, majority-vote accuracy over ``k`` samples (maj@k) and the mean accuracy
    of single samples on ``problems``; ``greedy_correct`` / ``maj_correct`` per problem (0/1)."""
    greedy = sample_completions(model, problems, n=1, temperature=0.0, seed=seed)
    samples = sample_completions(model, problems, n=k, temperature=temperature, seed=seed)
    g = [int(_correct(p, t[0])) for p, t in zip(problems, greedy, strict=True)]
    votes = []
    for p, texts in zip(problems, samples, strict=True):
        answers = [final_answer(t) for t in texts]
        top = majority([None if a is None else int(a) for a in answers])
        votes.append(int(top is not None and top == int(p.answer)))
    single = sum(_correct(p, t) for p, ts in zip(problems, samples, strict=True) for t in ts)
    n = len(problems)
    return {
        "greedy_acc": sum(g) / n,
        "maj_acc": sum(votes) / n,
        "sample_acc": single / (n * k),
        "greedy_correct": g,
        "maj_correct": votes,
    }


# ---------------------------------------------------------------------------------------------
# The iterations, with checkpoints at their boundaries


@dataclass
class IRPOResult:
    model: Llama  # the last iteration's model
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per model M_0..M_T


def _checkpoint(out_dir: Path, t: int) -> Path:
    return out_dir / f"iter_{t}.safetensors"


def save_iteration(out_dir: Path, t: int, model: Llama, history: list[dict[str, Any]]) -> Path:
    """``iter_<t>.safetensors`` (model + config) and ``history.json``, each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = save_model(
        _checkpoint(out_dir, t), model, kind=KIND, config=asdict(model.config), iteration=t
    )
    write_text_atomic(out_dir / "history.json", json.dumps(history, indent=1))
    return path


def load_iteration(path: str | os.PathLike, *, device: str = "cpu") -> Llama:
    """A model saved by an Iterative RPO run (``iter_<t>.safetensors``)."""
    if not Path(path).is_file():
        raise UserError(f"no checkpoint at {path}")
    model, _ = load_model(path, lambda c: Llama(LlamaConfig(**c)), kind=KIND, map_location=device)
    return model.eval()


def last_iteration(out_dir: Path) -> int | None:
    """The highest t with ``iter_<t>.safetensors`` in ``out_dir`` (None if none)."""
    found = [int(p.stem.split("_")[1]) for p in out_dir.glob("iter_*.safetensors")]
    return max(found) if found else None


def iterative_rpo(
    model: Llama,
    problems: Sequence[ChainProblem],
    cfg: IRPOConfig,
    *,
    eval_problems: Sequence[ChainProblem] = (),
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    on_iteration: Callable[[int, Llama, dict[str, Any]], None] | None = None,
) -> IRPOResult:
    """Run ``cfg.iterations`` iterations of Iterative RPO from M_0 = ``model`` on ``problems``.

    ``history[t]`` holds M_t's evaluation on ``eval_problems`` (``greedy_acc``, ``maj_acc``,
    ``sample_acc``) and, for t >= 1, the sampling figures of the iteration that made it
    (``pair_fraction``, ``train_sample_acc``, ``n_pairs``), the winners' mean log-prob before
    and after training (``chosen_logp_before/after``) and the per-step training log
    (``steps``). With ``out_dir``, every finished iteration is saved (see :func:`save_iteration`);
    ``resume=True`` continues from the last one saved there."""
    if not problems:
        raise UserError("the training problem set is empty")
    if model.config.vocab_size != TOKENIZER.vocab_size:
        raise UserError(
            f"the model's vocabulary ({model.config.vocab_size} ids) is not the task "
            f"tokenizer's ({TOKENIZER.vocab_size}, {TOKENIZER.name}): build it with tiny_llama()"
        )
    folder = Path(out_dir) if out_dir is not None else None
    history: list[dict[str, Any]] = []
    start = 0
    if folder is not None and (last := last_iteration(folder)) is not None:
        if not resume:
            raise UserError(
                f"{folder} already holds iterations up to {last}: pass resume=True (--resume) "
                "to continue them, or choose another output folder"
            )
        model = load_iteration(_checkpoint(folder, last), device=device)
        history = json.loads((folder / "history.json").read_text())[: last + 1]
        start = last
    model = model.to(device).eval()
    if not history:
        history.append({"iteration": 0, **_eval(model, eval_problems, cfg, seed)})
        if folder is not None:
            save_iteration(folder, 0, model, history)
    bar = tqdm(range(start, cfg.iterations), desc="irpo iterations", disable=not progress)
    for t in bar:
        it_seed = seed * 1000 + t
        texts = sample_completions(
            model, problems, n=cfg.samples, temperature=cfg.temperature, seed=it_seed
        )
        pairs, stats = build_pairs(problems, texts, k=cfg.pairs, seed=it_seed)
        record: dict[str, Any] = {"iteration": t + 1}
        if pairs:
            probe = pairs[:256]  # a fixed set of this iteration's pairs: the log-prob diagnosis
            before = sequence_logps(model, probe)
            model, steps = train_iteration(
                model, pairs, cfg, seed=it_seed, device=device, desc=f"irpo M{t + 1}"
            )
            after = sequence_logps(model, probe)
        else:  # nothing to prefer: M_{t+1} = M_t (the figures say why: pair_fraction 0)
            before = after = torch.full((2,), float("nan"))
            steps = {}
        n = len(before) // 2
        record.update(_eval(model, eval_problems, cfg, seed))
        record.update(
            pair_fraction=stats["pair_fraction"],
            train_sample_acc=stats["sample_acc"],
            n_pairs=stats["n_pairs"],
            chosen_logp_before=float(before[:n].mean()),
            chosen_logp_after=float(after[:n].mean()),
            rejected_logp_before=float(before[n:].mean()),
            rejected_logp_after=float(after[n:].mean()),
            steps={k: v for k, v in steps.items() if k in ("loss", "chosen_logp", "nll", "dpo")},
        )
        history.append(record)
        if folder is not None:
            save_iteration(folder, t + 1, model, history)
        if on_iteration is not None:
            on_iteration(t + 1, model, record)
        bar.set_postfix(greedy=record.get("greedy_acc", float("nan")), pairs=len(pairs))
    return IRPOResult(model=model, history=history)


def _eval(
    model: Llama, problems: Sequence[ChainProblem], cfg: IRPOConfig, seed: int
) -> dict[str, Any]:
    if not problems:
        return {}
    return evaluate(model, problems, k=cfg.maj_k, temperature=cfg.temperature, seed=seed + 99)
