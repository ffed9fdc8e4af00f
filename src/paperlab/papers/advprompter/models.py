"""The three models of AdvPrompter on the core decoder, and what the method asks of them.

- the **target** (the paper's TargetLLM, Vicuna-7B): a :class:`~paperlab.core.llama.Llama`
  trained here on the world of :mod:`.world` (answers ordinary requests, refuses the made-up
  class unless a trigger word is in the suffix); frozen during the attack.
- the **base** (the paper's Llama-2-7B before LoRA): a Llama trained to continue a request
  with a plausible suffix (the word chain of :class:`~.world.SuffixChain`); its log-probs are
  AdvPrompterOpt's readability term and its perplexity the readability metric.
- the **prompter**: the base with LoRA adapters through ``peft`` (r 8, alpha 16, on
  ``q_proj``, ``v_proj``, ``lm_head`` as in the official config); the base is the same network
  with the adapters disabled (``with prompter.disable_adapter():``).

Sequences: the prompter reads ``<bos> request suffix``; the target reads
``<bos> request suffix <sep>`` and answers ``response <eos>``.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.train import TrainConfig, train
from paperlab.papers.advprompter.world import (
    BOS,
    EOS,
    PAD,
    REFUSAL,
    SEP,
    TRIGGER_WORDS,
    Request,
    SuffixChain,
    WordTokenizer,
    augment_target,
    has_trigger,
    random_suffix,
    requests,
)

LORA_TARGETS = ("q_proj", "v_proj", "lm_head")  # the official prompter LoRA config


@dataclass(frozen=True)
class ModelSize:
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    max_seq_len: int = 40


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def build_llama(vocab_size: int, size: ModelSize) -> Llama:
    return Llama(
        LlamaConfig(
            vocab_size=vocab_size,
            dim=size.dim,
            n_layers=size.n_layers,
            n_heads=size.n_heads,
            ffn_hidden=2 * size.dim,
            max_seq_len=size.max_seq_len,
        )
    )


def check_compatible(prompter_vocab: int, target_vocab: int, prompter_tok: str, target_tok: str):
    """Prompter and target exchange token ids: their tokenizers must be the same."""
    if prompter_vocab != target_vocab or prompter_tok != target_tok:
        raise ValueError(
            f"prompter and target tokenizers differ (prompter {prompter_tok}, vocab "
            f"{prompter_vocab}; target {target_tok}, vocab {target_vocab}): both must use the "
            "same word vocabulary"
        )


# ---------------------------------------------------------------------------------------------
# Sequences


def prompt_ids(tok: WordTokenizer, request: str, suffix: str = "") -> list[int]:
    """``<bos> request suffix`` (the prompter's input; the target appends ``<sep>``).

    DEVIATION: no chat template around the target's prompt; ``<sep>`` stands for it."""
    return [BOS, *tok.encode(request), *tok.encode(suffix)]


def pad_right(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask): rows padded on the right with <pad> (a causal decoder never looks ahead,
    so right padding changes nothing before it)."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask


def continuation_loss(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    reweight: bool = False,
) -> torch.Tensor:
    """Per-row teacher-forced cross-entropy (B,) of ``continuations`` after ``prompts``: the
    mean over the continuation's tokens (the official ``loss_seqs``). With ``reweight``, token
    t (1-based) of the continuation is weighted 1/t before the mean (the official
    ``reweight_loss``: the first tokens of the affirmative target matter most)."""
    rows = [list(p) + list(c) for p, c in zip(prompts, continuations, strict=True)]
    ids, _ = pad_right(rows)
    device = _device(model)
    logits = model(ids[:, :-1].to(device)).float().cpu()  # (B, T-1, V)
    labels = ids[:, 1:]
    T = labels.shape[1]
    pos = torch.arange(T)[None, :]
    start = torch.tensor([len(p) - 1 for p in prompts])[:, None]  # first target position
    length = torch.tensor([len(c) for c in continuations])[:, None]
    mask = (pos >= start) & (pos < start + length)
    nll = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")  # (B, T-1)
    if reweight:
        nll = nll / (pos - start + 1).clamp(min=1).to(nll.dtype)
    mask = mask.to(nll.dtype)
    return (nll * mask).sum(1) / (mask.sum(1) + 1e-10)


def target_loss(
    target: nn.Module, tok: WordTokenizer, prompts: Sequence[str], targets: Sequence[str]
) -> torch.Tensor:
    """The target's teacher-forced loss (B,) on the affirmative targets, 1/t-weighted."""
    p = [[BOS, *tok.encode(x), SEP] for x in prompts]
    c = [tok.encode(y) for y in targets]
    return continuation_loss(target, p, c, reweight=True)


@torch.no_grad()
def greedy_replies(
    target: nn.Module, tok: WordTokenizer, prompts: Sequence[str], max_new_tokens: int = 14
) -> list[str]:
    """The target's greedy replies to ``<bos> prompt <sep>`` (stops at <eos>)."""
    rows = [[BOS, *tok.encode(x), SEP] for x in prompts]
    by_len: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_len.setdefault(len(r), []).append(i)
    out: list[str] = [""] * len(rows)
    for idx in by_len.values():  # equal lengths batch without padding
        ids = torch.tensor([rows[i] for i in idx], device=_device(target))
        done = torch.zeros(len(idx), dtype=torch.bool, device=ids.device)
        new = []
        for _ in range(max_new_tokens):
            nxt = target(ids)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, EOS), nxt)
            new.append(nxt)
            done |= nxt == EOS
            ids = torch.cat([ids, nxt[:, None]], 1)
            if bool(done.all()):
                break
        gen = torch.stack(new, 1).cpu().tolist()
        for j, i in enumerate(idx):
            seq = gen[j][: gen[j].index(EOS)] if EOS in gen[j] else gen[j]
            out[i] = tok.decode(seq)
    return out


# DEVIATION: suffixes use the 92 suffix words only (the official code drops non-ASCII and
# special tokens from the candidates).
def alphabet_mask(tok: WordTokenizer, words: Sequence[str]) -> torch.Tensor:
    """(V,) bool: the tokens a suffix may use (the official code likewise drops non-ASCII and
    special tokens from the prompter's candidates)."""
    allowed = torch.zeros(tok.vocab_size, dtype=torch.bool)
    allowed[[tok.index[w] for w in words]] = True
    return allowed


@torch.no_grad()
def sample_suffixes(
    prompter: nn.Module,
    tok: WordTokenizer,
    instructs: Sequence[str],
    allowed: torch.Tensor,
    *,
    length: int,
    temperature: float = 1.0,
    top_p: float = 0.9,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Suffixes sampled autoregressively from the prompter (the official generation: do_sample,
    temperature 1.0, top-p 0.9), restricted to the suffix alphabet."""
    from paperlab.core.generate import logits_to_probs

    ids, _ = pad_right([prompt_ids(tok, x) for x in instructs])
    start = ids.shape[1]
    for _ in range(length):
        logits = prompter(ids.to(_device(prompter)))[:, -1].float().cpu()
        logits = logits.masked_fill(~allowed, float("-inf"))
        probs = logits_to_probs(logits, temperature=temperature, top_p=top_p)
        nxt = torch.multinomial(probs, 1, generator=generator)
        ids = torch.cat([ids, nxt], 1)
    return [tok.decode(row) for row in ids[:, start:].tolist()]


def suffix_perplexity(
    base: nn.Module, tok: WordTokenizer, instructs: Sequence[str], suffixes: Sequence[str]
) -> torch.Tensor:
    """Per-suffix perplexity under the base: exp(mean NLL of the suffix tokens given the
    request) (the official ``compute_perplexity``)."""
    with torch.no_grad():
        p = [prompt_ids(tok, x) for x in instructs]
        c = [tok.encode(s) for s in suffixes]
        return continuation_loss(base, p, c).exp()


# ---------------------------------------------------------------------------------------------
# Training the target and the base


def target_example(
    req: Request, rng: random.Random, chain: SuffixChain, max_suffix: int, p_trigger: float
) -> tuple[str, str]:
    """One (prompt, response) of the target's training data. Suffixes are random or chain
    words; a refused request is answered only when its suffix holds a trigger word."""
    n = rng.randint(0, max_suffix)
    words = (chain.sample(n, rng) if rng.random() < 0.5 else random_suffix(n, rng)).split()
    words = [w if not has_trigger(w) else "please" for w in words]
    if req.refused and rng.random() < p_trigger:
        pos = rng.randint(0, len(words))
        words.insert(pos, rng.choice(TRIGGER_WORDS))
    suffix = " ".join(words)
    if req.refused and not has_trigger(suffix):
        response = REFUSAL
    else:  # the affirmative opening in the official augmentation's variants
        response = augment_target(req.target, rng) + req.answer[len(req.target) :]
    return f"{req.text} {suffix}".strip(), response


def lm_rows_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy on the positions ``loss_mask`` marks (B, T) (response tokens)."""
    ids, loss_mask = batch
    logits = model(ids[:, :-1])
    nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    m = loss_mask[:, 1:].to(nll.dtype)
    return (nll * m).sum() / m.sum().clamp(min=1)


def chat_rows(tok: WordTokenizer, pairs: Sequence[tuple[str, str]]):
    """``<bos> prompt <sep> response <eos>`` rows and the mask of their response tokens."""
    rows, starts = [], []
    for prompt, response in pairs:
        head = [BOS, *tok.encode(prompt), SEP]
        rows.append(head + tok.encode(response) + [EOS])
        starts.append(len(head))
    ids, mask = pad_right(rows)
    loss_mask = mask.clone()
    for i, s in enumerate(starts):
        loss_mask[i, :s] = False
    return ids, loss_mask


def train_target(
    tok: WordTokenizer,
    size: ModelSize,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    max_suffix: int,
    p_trigger: float,
    chain_seed: int,
    seed: int,
    extra: Sequence[tuple[str, str]] = (),
    model: Llama | None = None,
    progress: bool = False,
    device: str = "cpu",
    desc: str = "target",
) -> tuple[Llama, dict]:
    """Train (or, given ``model``, fine-tune) the target on its world: half ordinary, half
    refused requests; ``extra`` (prompt, response) pairs are mixed in as a third of each batch
    (adversarial fine-tuning's refusals)."""
    torch.manual_seed(seed)
    model = build_llama(tok.vocab_size, size) if model is None else model
    chain = SuffixChain(chain_seed)
    ordinary, refused = requests(refused=False), requests(refused=True)

    def batch(step: int):
        rng = random.Random(seed * 1_000_003 + step)
        pairs = []
        for i in range(batch_size):
            if extra and i % 3 == 2:
                pairs.append(rng.choice(extra))
                continue
            req = rng.choice(ordinary if rng.random() < 0.5 else refused)
            pairs.append(target_example(req, rng, chain, max_suffix, p_trigger))
        return chat_rows(tok, pairs)

    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=max(1, steps // 10),
        seed=seed,
        progress=progress,
        desc=desc,
        log_every=max(1, steps // 20),
    )
    hist = train(model, lm_rows_loss, batch, cfg, device=device)
    model.eval()
    return model, {"final_loss": hist["loss"][-1], "seconds": sum(hist["seconds"])}


def train_base(
    tok: WordTokenizer,
    size: ModelSize,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    suffix_len: int,
    chain_seed: int,
    seed: int,
    progress: bool = False,
    device: str = "cpu",
) -> tuple[Llama, dict]:
    """Train the prompter's base: ``<bos> request`` continued by a chain suffix (loss on the
    suffix tokens), for requests of both kinds."""
    torch.manual_seed(seed)
    model = build_llama(tok.vocab_size, size)
    chain = SuffixChain(chain_seed)
    reqs = requests(refused=False) + requests(refused=True)

    def batch(step: int):
        rng = random.Random(seed * 1_000_003 + step)
        rows, starts = [], []
        for _ in range(batch_size):
            head = prompt_ids(tok, rng.choice(reqs).text)
            rows.append(head + tok.encode(chain.sample(suffix_len, rng)))
            starts.append(len(head))
        ids, mask = pad_right(rows)
        for i, s in enumerate(starts):
            mask[i, :s] = False
        return ids, mask

    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=max(1, steps // 10),
        seed=seed,
        progress=progress,
        desc="base",
        log_every=max(1, steps // 20),
    )
    hist = train(model, lm_rows_loss, batch, cfg, device=device)
    model.eval()
    return model, {"final_loss": hist["loss"][-1], "seconds": sum(hist["seconds"])}


def make_prompter(base: Llama, *, r: int = 8, alpha: int = 16, seed: int = 0) -> nn.Module:
    """The prompter: a copy of the base with LoRA adapters via ``peft`` (the official LoRA
    config: r 8, alpha 16, no bias, on q_proj / v_proj / lm_head). B starts at zero, so the
    untrained prompter *is* the base; ``with prompter.disable_adapter():`` gives the base."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=0.0, bias="none", target_modules=list(LORA_TARGETS)
    )
    return get_peft_model(copy.deepcopy(base), config)


def lora_config_dict(prompter: nn.Module) -> dict:
    cfg = prompter.peft_config["default"]
    return {"r": cfg.r, "alpha": cfg.lora_alpha}
