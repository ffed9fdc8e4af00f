"""TransNAR's two phases (Sec. 3): (1) the NAR is trained on the graph form and frozen;
(2) the transformer is trained on CLRS-Text with its tokens cross-attending to the frozen
NAR's node embeddings of the same instance. The baseline trains the same transformer for the
same steps on the same text without the NAR. Both are scored on greedy decodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from paperlab.core.llama import LlamaConfig
from paperlab.core.train import TrainConfig, train
from paperlab.papers.transnar.clrs import (
    Instance,
    format_example,
    graph_form,
    sample_many,
    score_answer,
)
from paperlab.papers.transnar.model import (
    BOS,
    PAD,
    VOCAB_SIZE,
    TextDecoder,
    decode,
    encode,
    greedy_decode,
    random_positions,
)
from paperlab.papers.transnar.nar import NAR, collate_graphs, nar_accuracy, nar_loss

METRICS = ("exact", "shape", "clrs", "parse")

# ---------------------------------------------------------------------------------------------
# Phase 1: the NAR on the graph form


def pretrain_nar(
    cfg: Any, seed: int, progress: bool = False, device: str = "cpu"
) -> tuple[NAR, dict[str, float]]:
    """Train the multi-task NAR on sizes ``cfg.train_sizes`` on ``device``; return it frozen
    (on ``device``), and its element-wise accuracy per algorithm and eval size on fresh
    graphs."""
    torch.manual_seed(seed)
    model = NAR(algorithms=cfg.algorithms, hidden=cfg.nar_hidden, triplet_dim=cfg.triplet_dim)
    pools = {
        a: [graph_form(x) for x in sample_many((a,), cfg.train_sizes, cfg.nar_pool, seed)]
        for a in cfg.algorithms
    }

    def batches(step: int):
        algo = cfg.algorithms[step % len(cfg.algorithms)]
        rng = np.random.default_rng((seed, step))
        picked = rng.integers(len(pools[algo]), size=cfg.nar_batch)
        return algo, collate_graphs([pools[algo][i] for i in picked])

    tcfg = TrainConfig(
        steps=cfg.nar_steps,
        lr=cfg.nar_lr,
        warmup_steps=cfg.nar_steps // 20,
        weight_decay=0.0,
        progress=progress,
        seed=seed,
        desc="transnar: NAR",
    )
    # a GraphBatch is not a tensor: the training loop cannot move it, the loss does
    train(model, lambda m, b: nar_loss(m, b[0], b[1].to(device)), batches, tcfg, device=device)
    model.eval().requires_grad_(False)
    acc = {}
    for algo in cfg.algorithms:
        for n in cfg.eval_sizes:
            graphs = [graph_form(x) for x in sample_many((algo,), (n,), 64, seed + 7919 + n)]
            acc[f"nar_acc_{algo}_n{n}"] = nar_accuracy(model, algo, collate_graphs(graphs))
    return model, acc


# ---------------------------------------------------------------------------------------------
# Text examples with the frozen NAR's node embeddings


@dataclass
class TextExample:
    algo: str
    n: int
    prompt: list[int]  # BOS + question
    answer: list[int]  # answer, ending with the blank line
    answer_text: str
    nodes: torch.Tensor  # (n, nar_hidden): the NAR's embeddings of this instance's graph


@torch.no_grad()
def text_examples(instances: list[Instance], nar: NAR, chunk: int = 64) -> list[TextExample]:
    """CLRS-Text strings plus node embeddings of the same instances (frozen NAR, run on its
    own device; the embeddings are kept on the CPU, the batches' home)."""
    device = next(nar.parameters()).device
    out: list[TextExample | None] = [None] * len(instances)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, x in enumerate(instances):
        groups.setdefault((x.algo, x.n), []).append(i)
    for (algo, n), idx in groups.items():
        for start in range(0, len(idx), chunk):
            part = idx[start : start + chunk]
            batch = collate_graphs([graph_form(instances[i]) for i in part])
            # DEVIATION: every cross-attention layer reads these *final* node embeddings (the
            # paper advances the NAR one step per transformer layer); no edge embeddings.
            nodes = nar.embed(algo, batch.to(device)).cpu()
            for row, i in enumerate(part):
                q, a = format_example(instances[i])
                out[i] = TextExample(algo, n, [BOS, *encode(q)], encode(a), a, nodes[row].clone())
    return out  # type: ignore[return-value]


def collate_text(examples: list[TextExample], *, randomized: bool, max_position: int, gen):
    """(ids, labels, positions, nodes, node_mask): next-token targets on the answer only."""
    # DEVIATION: the loss covers the answer tokens only.
    seqs = [e.prompt + e.answer for e in examples]
    T, N = max(len(s) for s in seqs) - 1, max(e.n for e in examples)
    ids = torch.full((len(seqs), T), PAD, dtype=torch.long)
    labels = torch.full((len(seqs), T), -100, dtype=torch.long)
    nodes = torch.zeros((len(seqs), N, examples[0].nodes.shape[-1]))
    node_mask = torch.zeros((len(seqs), N), dtype=torch.bool)
    for b, (e, s) in enumerate(zip(examples, seqs, strict=True)):
        ids[b, : len(s) - 1] = torch.as_tensor(s[:-1])
        start = len(e.prompt) - 1  # the position whose next token is the answer's first
        labels[b, start : len(s) - 1] = torch.as_tensor(s[start + 1 :])
        nodes[b, : e.n], node_mask[b, : e.n] = e.nodes, True
    if randomized:
        positions = random_positions(len(seqs), T, max_position, gen)
    else:
        positions = torch.arange(T).expand(len(seqs), T)
    return ids, labels, positions, nodes, node_mask


# ---------------------------------------------------------------------------------------------
# Phase 2: the transformer (with or without cross-attention), trained and scored in one job


def build_decoder(cfg: Any, cross_attention: bool) -> TextDecoder:
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        dim=cfg.dim,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        ffn_hidden=cfg.ffn_hidden,
        max_seq_len=cfg.max_position,
    )
    return TextDecoder(config=config, node_dim=cfg.nar_hidden, cross_attention=cross_attention)


def text_loss(model: TextDecoder, batch) -> torch.Tensor:
    ids, labels, positions, nodes, node_mask = batch
    logits = model(ids, nodes=nodes, node_mask=node_mask, position_ids=positions)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)


def fit_text_model(
    *,
    cfg: Any,
    cross_attention: bool,
    train_set: list[TextExample],
    eval_set: list[TextExample],
    seed: int,
    progress: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Phase 2 for one model (a job for ``run_jobs``): train on ``device``, then score greedy
    decodes there. Batches are built on the CPU and moved by the training loop."""
    torch.manual_seed(seed)
    model = build_decoder(cfg, cross_attention)
    name = "transnar" if cross_attention else "baseline"

    def batches(step: int):
        gen = torch.Generator().manual_seed(seed * 100_003 + step)
        picked = torch.randint(len(train_set), (cfg.batch_size,), generator=gen).tolist()
        return collate_text(
            [train_set[i] for i in picked],
            randomized=cfg.randomized_positions,
            max_position=cfg.max_position,
            gen=gen,
        )

    tcfg = TrainConfig(
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=cfg.steps // 10,
        weight_decay=0.01,
        progress=progress,
        seed=seed,
        desc=f"transnar: {name}",
    )
    history = train(model, text_loss, batches, tcfg, device=device)
    scores = evaluate(model, eval_set, cfg, seed)
    return {
        "state": {k: v.cpu() for k, v in model.state_dict().items()},
        "history": history,
        "scores": scores,
        "train_seconds": sum(history["seconds"]),
        "params": model.num_params(),
    }


def evaluate(model: TextDecoder, eval_set: list[TextExample], cfg: Any, seed: int) -> dict:
    """Mean exact / shape / CLRS / parse score per (algorithm, size) of greedy decodes, and
    a few decoded samples."""
    groups: dict[tuple[str, int], list[TextExample]] = {}
    for e in eval_set:
        groups.setdefault((e.algo, e.n), []).append(e)
    gen = torch.Generator().manual_seed(seed + 1)
    scores: dict[str, float] = {}
    samples: dict[str, str] = {}
    for (algo, n), exs in sorted(groups.items()):
        N = max(e.n for e in exs)
        nodes = torch.stack([e.nodes for e in exs]) if N == min(e.n for e in exs) else None
        mask = torch.ones(nodes.shape[:2], dtype=torch.bool) if nodes is not None else None
        outs = greedy_decode(
            model,
            [e.prompt for e in exs],
            max_new_tokens=max(len(e.answer) for e in exs) + 8,
            nodes=nodes,
            node_mask=mask,
            randomized=cfg.randomized_positions,
            max_position=cfg.max_position,
            generator=gen,
        )
        per = [score_answer(algo, decode(o), e.answer_text) for o, e in zip(outs, exs, strict=True)]
        for metric in METRICS:
            scores[f"{metric}_{algo}_n{n}"] = float(np.mean([p[metric] for p in per]))
        samples[f"{algo}_n{n}"] = f"target {exs[0].answer_text!r} got {decode(outs[0])!r}"
    return {"scores": scores, "samples": samples}
