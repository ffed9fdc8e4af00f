"""The miniature PoLL world: tiny judges that grade 2-digit arithmetic against a reference.

What is judged are answers to "What is 47+38?" whose correctness is known by construction
(`paperlab.core.data.graded`): answers of three rule-defined systems with graded errors (exact,
off by one, a small error, a digit wrong, nonsense) and the judge families' own answers. The
judge sees the question, the answer and the reference answer (the paper's KILT QA setting) and
says True or False (`prompts.qa_messages`).

Judges come from the evaluator recipe (`paperlab.core.llm.evaluators`): each family has its own
base (its size, its seed, its share of the questions), pre-trained on answering questions and
comparing numbers, and fine-tuned into a judge of graded items from its share of the questions
(and keeps answering them: the families are also the systems whose answers the jury judges).
The evaluated questions are held out from every family's training.

Self-preference is not put in: a judge could pass its own family's wrong answers more often
only if what it learned while answering leaks into its judging.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from paperlab.core.data.graded import (
    SYSTEMS,
    GradedItem,
    Question,
    graded_item,
    make_graded_items,
    sample_questions,
)
from paperlab.core.llm.evaluators import (
    EvaluatorBaseConfig,
    EvaluatorFamily,
    EvaluatorJob,
    FinetuneConfig,
    answer_task,
    digit_marks,
    finetune_evaluators,
    in_share,
    pretrain_family_bases,
)
from paperlab.core.llm.tiny import ExampleFn, save_chat_model
from paperlab.papers.poll.prompts import qa_messages

HOLDOUT_SHARE = 0.15  # the share of all questions no judge trains on (the evaluated ones)
HOLDOUT_SEED = 99_991


def held_out(q: Question) -> bool:
    """Whether `q` belongs to the evaluation questions (never in any family's training)."""
    return in_share(q, HOLDOUT_SHARE, HOLDOUT_SEED)


def judge_reply(item: GradedItem) -> str:
    """What a judge is trained to reply: its digit-by-digit comparison of the answer with the
    reference (`digit_marks`), then the verdict."""
    # DEVIATION: the judge shows its work before "True"/"False" (the paper's judges reply with
    # the verdict only); a tiny byte model does not learn to test two numbers for equality in
    # one step within the budget, but learns it digit pair by digit pair
    return f"{digit_marks(item.response, item.reference)} {item.correct}"


def judge_task(family: EvaluatorFamily) -> ExampleFn:
    """Reference-based judging of graded items on the family's share of the (not held-out)
    questions."""

    def example(rng: random.Random):
        while True:
            q = sample_questions(1, seed=rng)[0]
            if not held_out(q) and family.knows(q):
                break
        item = make_graded_items(1, seed=rng, questions=[q])[0]
        return qa_messages(item.instruction, item.response, item.reference), judge_reply(item)

    return example


LR_WIDTH = 64  # learning rates are the config's at this width and scale as 1/width above it


def lr_scale(dim: int) -> float:
    """Adam's updates change a wider model more per step, so wider judges train at a
    proportionally smaller learning rate (as muP prescribes for hidden weights): with the
    config's rates a dim-96 judge reached kappa 0.71 where 2/3 of them gave 0.99, and dim-80 and
    dim-128 judges stayed below 0.4 where dim 48 and 64 reached 1.0."""
    return min(1.0, LR_WIDTH / dim)


def families(cfg: Any) -> list[EvaluatorFamily]:
    """The small families `f0..` and the large judge `big` of a `PoLLClaimsConfig`: different
    sizes, data shares and seeds."""

    def base(dim: int, layers: int, share: float, steps: int) -> EvaluatorBaseConfig:
        return EvaluatorBaseConfig(
            dim=dim,
            n_layers=layers,
            n_heads=4,
            max_seq_len=256,
            steps=steps,
            batch_size=cfg.batch_size,
            lr=cfg.base_lr * lr_scale(dim),
            data_share=share,
        )

    out = [
        EvaluatorFamily(f"f{i}", base(dim, layers, share, cfg.base_steps), seed=100 + i)
        for i, (dim, layers, share) in enumerate(
            zip(cfg.family_dims, cfg.family_layers, cfg.family_shares, strict=True)
        )
    ]
    big = base(cfg.big_dim, cfg.big_layers, cfg.big_share, cfg.base_steps)
    return [*out, EvaluatorFamily("big", big, seed=100 + len(out))]


def train_judges(cfg: Any, seed: int, directory: Path, *, progress: bool = False) -> list[Path]:
    """Families `f0..f{n-1}` and the large judge `big` (a `PoLLClaimsConfig`): bases pre-trained,
    then fine-tuned into judges, saved under `directory`; their directories in that order."""
    fams = families(cfg)
    # the run's seed moves every family's seed (and its share of the questions)
    seeded = [EvaluatorFamily(f.name, f.base, seed=1000 * seed + f.seed) for f in fams]
    # the largest first: two workers then finish together (results do not depend on order)
    order = sorted(seeded, key=lambda f: -(f.base.dim**2) * f.base.n_layers)
    bases = pretrain_family_bases(order, progress=progress)
    jobs = []
    for f in order:
        steps = cfg.big_steps if f.name == "big" else cfg.steps
        tasks = [
            (judge_task(f), 1.0 - cfg.answer_weight),
            (answer_task(share=f.base.data_share, seed=f.seed), cfg.answer_weight),
        ]
        ft = FinetuneConfig(
            steps=steps, batch_size=cfg.batch_size, lr=cfg.lr * lr_scale(f.base.dim)
        )
        jobs.append(EvaluatorJob(f.name, bases[f.name], tasks, ft, seed=f.seed + 7))
    models = finetune_evaluators(jobs, progress=progress)
    return [save_chat_model(models[f.name], directory / f.name, f.name) for f in seeded]


def evaluation_items(n: int, n_questions: int, seed: int) -> tuple[list[GradedItem], list]:
    """`n` graded items of the rule-defined systems and `n_questions` questions for the
    families to answer, all held out from training."""
    rng = random.Random(f"poll-eval|{seed}")
    pool: list[Question] = []
    while len(pool) < n + n_questions:
        q = sample_questions(1, seed=rng)[0]
        if held_out(q):
            pool.append(q)
    items = [make_graded_items(1, seed=rng, systems=SYSTEMS, questions=[q])[0] for q in pool[:n]]
    return items, pool[n:]


def answered_item(q: Question, answer: str, system: str) -> GradedItem:
    """A family's answer as a graded item (its score by the rubric)."""
    return graded_item(q, answer, system)
