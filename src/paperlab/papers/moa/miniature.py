"""The miniature MoA world: tiny chat models that know different made-up facts.

Each proposer memorises its own random share of the facts (`core.data.facts`: "What is the code
of kiv?" -> "K") and makes codes up for the rest, so the proposers' knowledge, and their
mistakes, differ: the situation MoA is built for (Sec. 2.1: models are "collaborative"; a
model answers better when it sees other models' answers). Every proposer learns two tasks, as
the paper's chat models can do both: answering (`answer_task`) and answering with other
models' responses as references in the system message (`synthesise_task`, the prompt of
`prompts.with_references`). The aggregator is, by default, a pure reader: it learns no facts of
its own (Sec. 2.1: models answer better given other models' answers, even weaker ones), only
more reading (`MoAClaimsConfig.aggregator_synth` and `aggregator_agree` below 1 give it facts
of its own). Training references are noisy: each is the right code with a probability drawn per
example, else a made-up one, so a model learns to weigh them (and its own memory), not to copy
the first. The shared base learns to read them with a curriculum: mostly-right references
first, then one reference per proposer whose plurality is the answer, a tie going to the
earlier reference (`agreement_task`, the situation MoA's layers give a model). The aggregator
then learns that situation longer, at a gentler learning rate, with made-up codes that collide
as the proposers' do (`agreement_task(skew=...)`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from paperlab.core.data.facts import (
    Fact,
    answer_task,
    knowledge_split,
    make_facts,
    unseen_fact,
    wrong_code,
)
from paperlab.core.llm.tiny import ChatJob, ExampleFn, save_chat_model, train_chat_models
from paperlab.papers.moa.prompts import with_references

# DEVIATION: the tiny byte-level models read a short version of the aggregate-and-synthesise
# instruction (every byte is a token they must be trained on); real models get
# prompts.AGGREGATE_INSTRUCTION.
SHORT_INSTRUCTION = "Synthesise critically:"

# How often a training reference is right: drawn per example from this range. The base first
# learns where to look on mostly-right references (copying one already pays), then to weigh
# them on noisy ones (only the plurality, or its own memory, pays). Without the first phase a
# 2-layer model trained 800 steps on noisy references alone read them at chance (13% given
# layer 1's answers, where a majority vote over them scored 76%).
EASY_REFERENCES = (0.6, 1.0)
NOISY_REFERENCES = (0.3, 0.9)
# The aggregator's references about the facts it knows: often mostly wrong, so that its own
# memory pays where the references' plurality is wrong. With NOISY_REFERENCES there it
# followed the references and used its memory little (given layer 1's answers: 79% on the
# facts it knows, where answering alone it is right on all of them).
AGGREGATOR_REFERENCES = (0.0, 0.9)


def synthesise_task(
    known: Sequence[Fact],
    taken: set[str],
    *,
    max_refs: int = 6,
    min_refs: int = 1,
    p_right: tuple[float, float] = NOISY_REFERENCES,
    p_unseen: float = 0.5,
) -> ExampleFn:
    """References to a question the model knows the answer to, or (with `p_unseen`) about a
    fact it has never seen, whose code only the references can tell. Each example has
    `min_refs..max_refs` references, each right with a probability drawn from `p_right` for
    the example (else a uniformly drawn wrong code). Names in `taken` (the miniature's facts)
    are never invented, so no model learns a fact it was not given."""
    if not 1 <= min_refs <= max_refs:
        raise ValueError(f"synthesise_task: need 1 <= min_refs={min_refs} <= max_refs={max_refs}")

    codes = "".join(sorted({f.code for f in known}))

    def example(rng: random.Random):
        if rng.random() < p_unseen:
            f = unseen_fact(taken, codes, rng)
        else:
            f = rng.choice(known)
        q = rng.uniform(*p_right)
        refs = [
            f.answer if rng.random() < q else wrong_code(f.answer, rng, len(codes))
            for _ in range(rng.randint(min_refs, max_refs))
        ]
        messages = [{"role": "user", "content": f.question}]
        return with_references(messages, refs, instruction=SHORT_INSTRUCTION), f.answer

    return example


def agreement_task(
    known: Sequence[Fact],
    taken: set[str],
    *,
    refs: int,
    p_unseen: float = 1.0,
    ties: bool = False,
    min_right: int = 2,
    skew: float = 0.0,
) -> ExampleFn:
    """The references an aggregator meets in MoA: one per proposer (`refs` of them), `k` right
    (k drawn uniformly from 2..refs; 1 with a single reference), the others made-up codes,
    none of them given more than `k` times, in random order. About a fact the model has never
    seen (with `p_unseen`, else one of `known`), the code most references agree on is the only
    signal, and it is always right: the model learns to weigh references by their agreement.

    Without `ties` no wrong code is given `k` times either (the right code is the strict
    plurality). With `ties` a wrong code may be given as often as the right one, and then the
    right code comes first: MoA lists its references in proposer order, the most accurate
    proposer first (`MoAClaimsConfig.proposer_rates` is descending), so in a tie the earlier
    reference is the likelier one. A plain majority vote breaks ties the same way
    (`core.stats.majority`: the value seen first). Names in `taken` are never invented.

    `min_right` is the least `k` (1: with `ties`, six different codes, the right one first,
    as a vote would pick it). With `skew` > 0 the made-up codes are not uniform: each example
    draws a weight u**skew (u uniform in [0, 1)) for every wrong code, so models "make the
    same code up" and wrong codes collide, as they do in MoA's layers (the proposers' made-up
    codes are correlated: in layer 1 of the default run, three of six agreed on a wrong code in
    6% of the questions); k is then drawn again with every attempt."""
    if refs < 1:
        raise ValueError(f"agreement_task: need refs >= 1, got {refs}")
    if min_right == 1 and not ties and refs > 1:
        raise ValueError("agreement_task: min_right=1 needs ties=True (all-different codes tie)")
    if min_right < 1 or skew < 0:
        raise ValueError(
            f"agreement_task: need min_right >= 1 and skew >= 0, got {min_right}, {skew}"
        )
    codes = "".join(sorted({f.code for f in known}))
    most = 0 if ties else 1  # a wrong code may be given k - most times

    def example(rng: random.Random):
        f = unseen_fact(taken, codes, rng) if rng.random() < p_unseen else rng.choice(known)
        if skew:
            others = [c for c in codes if c != f.answer]
            while True:
                k = rng.randint(min(min_right, refs), refs)
                weights = [rng.random() ** skew for _ in others]
                wrong = rng.choices(others, weights=weights, k=refs - k)
                if all(wrong.count(c) <= k - most for c in wrong):
                    break
        else:
            k = rng.randint(min(min_right, refs), refs)
            while True:
                wrong = [wrong_code(f.answer, rng, len(codes)) for _ in range(refs - k)]
                if all(wrong.count(c) <= k - most for c in wrong):
                    break
        shown = [f.answer] * k + wrong
        rng.shuffle(shown)
        tied = {c for c in wrong if wrong.count(c) == k}
        if tied:  # the right code goes before the first tied one (swap the two positions)
            i, j = shown.index(f.answer), min(shown.index(c) for c in tied)
            if j < i:
                shown[i], shown[j] = shown[j], shown[i]
        messages = [{"role": "user", "content": f.question}]
        return with_references(messages, shown, instruction=SHORT_INSTRUCTION), f.answer

    return example


def train_models(cfg, seed: int, directory: Path, *, progress: bool = False) -> list[Path]:
    """Train proposers `p0..p{n-1}` and the aggregator `agg` (a `MoAClaimsConfig`), save them
    under `directory`; return their directories, proposers first.

    DEVIATION (compute): all models start from one base trained only on synthesising
    references about unseen facts (the skill is slow to learn and the same for everyone; first
    `base_easy_steps` on mostly-right references, then `base_steps` on the plurality of one
    reference per proposer, ties going to the earlier reference), then each learns its own
    facts, with some synthesis examples mixed in, for `proposer_steps`. Their knowledge (hence
    their mistakes) comes from those separate fine-tuning sets. The aggregator learns to read
    for `aggregator_steps`, at `aggregator_lr` (with its own facts only when
    `aggregator_synth` or `aggregator_agree` is below 1)."""
    facts = make_facts(cfg.n_facts, seed=seed)
    rates = [*cfg.proposer_rates, cfg.aggregator_rate]
    known = knowledge_split(facts, rates, seed=seed + 1)
    taken = {f.name for f in facts}
    refs = len(cfg.proposer_rates)
    # MoA's layers always pass every proposer's answer (fewer only when calls fail): the
    # noisy phase and the fine-tuning use at least half the proposers' count of references
    few = max(1, refs // 2)
    easy = synthesise_task(facts, taken, max_refs=refs, p_right=EASY_REFERENCES, p_unseen=1.0)
    # the second phase counts: a base trained on noisy references instead (whose right code is
    # not always the plurality) gave an aggregator that read layer 1's answers 4 points below
    # a majority vote over them; on agreement_task it came within 2 points of the vote. Ties:
    # a base that had never seen one read layer 1's answers at 77.8% (vote 80.0%; in ties it
    # sometimes gave a code nobody tied on); 300 more steps with ties read them at 80.9%.
    # DEVIATION: our synthetic reading data; the tie prior (earlier reference) holds because
    # MoA lists our proposers best first
    plurality = agreement_task(facts, taken, refs=refs, ties=True)
    base = None
    for phase, task, steps in (
        ("base-easy", easy, cfg.base_easy_steps),
        ("base", plurality, cfg.base_steps),
    ):
        if steps:
            job = ChatJob(
                phase, [(task, 1.0)], cfg.base_model(steps), seed=1000 * seed + 999, init=base
            )
            base = train_chat_models([job], progress=progress)[phase]
    jobs = []
    for i, k in enumerate(known):
        last = i == len(known) - 1
        name = "agg" if last else f"p{i}"
        synth = cfg.aggregator_synth if last else cfg.proposer_synth
        read = synthesise_task(k, taken, max_refs=refs, min_refs=few)
        model = cfg.proposer_model()
        if last:  # the aggregator: references as MoA's layers give them about facts it never
            # saw (ties too, as the base learned; all six different: the first; made-up codes
            # colliding, aggregator_skew), and (aggregator_synth < 1, aggregator_agree < 1) its
            # own facts, alone and against often-wrong references. DEVIATION: the default is a
            # pure reader (both shares 1; the paper's aggregators are strong models that know
            # things): every recipe that gave it facts of its own read layer 1's answers
            # 1-3 points below a vote (README), as a tiny model tells the facts it knows from
            # the ones it never saw badly; 800 steps of reading alone, at 2e-3, read at the vote
            read = synthesise_task(
                k, taken, max_refs=refs, min_refs=few, p_right=AGGREGATOR_REFERENCES, p_unseen=0.0
            )
            agree = agreement_task(
                k, taken, refs=refs, ties=True, min_right=1, skew=cfg.aggregator_skew
            )
            a = cfg.aggregator_agree
            tasks = [(answer_task(k), 1.0 - synth), (read, synth * (1 - a)), (agree, synth * a)]
            tasks = [(task, w) for task, w in tasks if w > 0]
            # a gentler learning rate: at the base's 5e-3, 300 steps of its own facts wore the
            # base's reading down (layer 1's answers: 80.9% -> 77.6%; at 2e-3: 80.4%); reading
            # alone, 800 steps at 2e-3 read 78.8-80.0%, 300 at 5e-3 78.7% (vote 79.5%)
            model = cfg.base_model(steps=cfg.aggregator_steps, lr=cfg.aggregator_lr)
        else:
            tasks = [(answer_task(k), 1.0 - synth), (read, synth)]
        jobs.append(ChatJob(name, tasks, model, seed=1000 * seed + i, init=base))
    # the longest job first: on 2 workers the others run beside it
    models = train_chat_models(sorted(jobs, key=lambda j: -j.cfg.steps), progress=progress)
    return [save_chat_model(models[job.name], directory / job.name, job.name) for job in jobs]
