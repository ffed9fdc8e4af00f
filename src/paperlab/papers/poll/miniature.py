"""The miniature PoLL world: judges that know different made-up facts.

Three small "families" and one larger judge each memorise a random share of the facts
(`core.data.facts`) and learn two ways of judging an answer to "What is the code of kiv?":
without a reference (the judge must know the fact: `judge_task`) and against a reference
(string comparison: `reference_task`). Each family also answers questions, and its answers are
what the jury judges: right where the family knows the fact, made up where it does not. A
judge that does not know a fact falls back on what it believes, and a family believes its own
made-up answers, so a judge is lenient toward its own family's mistakes: the intra-model bias
PoLL reports (Sec. 4.3), here arising from the models rather than put in by hand.
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
from paperlab.papers.poll.prompts import qa_messages


def judge_task(known: Sequence[Fact], codes: str) -> ExampleFn:
    """Reference-free: is this answer to a fact the judge knows right? Half are."""

    def example(rng: random.Random):
        f = rng.choice(known)
        right = rng.random() < 0.5
        answer = f.answer if right else wrong_code(f.answer, rng, len(codes))
        return qa_messages(f.question, answer), str(right)

    return example


def reference_task(taken: set[str], codes: str) -> ExampleFn:
    """Reference-based, on facts nobody was taught: compare the answer with the reference."""

    def example(rng: random.Random):
        f = unseen_fact(taken, codes, rng)
        right = rng.random() < 0.5
        answer = f.answer if right else wrong_code(f.answer, rng, len(codes))
        return qa_messages(f.question, answer, reference=f.answer), str(right)

    return example


def train_judges(cfg, seed: int, directory: Path, *, progress: bool = False) -> list[Path]:
    """Families `f0..f{n-1}` and the large judge `big` (a `PoLLClaimsConfig`), saved under
    `directory`; returns their directories in that order."""
    facts = make_facts(cfg.n_facts, seed=seed)
    codes = "".join(sorted({f.code for f in facts}))
    taken = {f.name for f in facts}
    known = knowledge_split(facts, [*cfg.family_rates, cfg.big_rate], seed=seed + 1)
    jobs = []
    for i, k in enumerate(known):
        big = i == len(known) - 1
        tasks = [
            (answer_task(k), cfg.answer_share),
            (judge_task(k, codes), cfg.judge_share),
            (reference_task(taken, codes), cfg.reference_share),
        ]
        model_cfg = cfg.big_model() if big else cfg.family_model()
        jobs.append(ChatJob("big" if big else f"f{i}", tasks, model_cfg, seed=1000 * seed + i))
    models = train_chat_models(jobs, progress=progress)
    return [save_chat_model(models[j.name], directory / j.name, j.name) for j in jobs]
