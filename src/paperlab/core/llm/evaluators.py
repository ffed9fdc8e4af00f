"""Tiny evaluator models that really grade: a shared pre-trained byte-level base, fine-tuned into
judges on any mix of chat tasks, on a task whose true quality is known by construction
(`paperlab.core.data.graded`: 2-digit arithmetic answered with graded errors, rubric 1..5).

The recipe has three parts:

- **A base.** `pretrain_evaluator_base(cfg, seed=...)` trains a tiny chat model (a core
  `Llama`, `paperlab.core.llm.tiny`) on the task itself: answering the questions of its share of
  the question space (`EvaluatorBaseConfig.data_share`) and comparing two numbers. Every
  evaluator of a family fine-tunes from the same base (as the Prometheus 2 experts share theirs),
  so two evaluators fine-tuned from one base have the same architecture and parameter names and
  their weights can be merged. `base_codec(cfg)` stores a base in the artifact disk cache.
- **Fine-tuning.** `finetune_evaluator(base, tasks, cfg, seed=...)` trains a copy of the base on
  a weighted list of `ExampleFn`s (rng -> (messages, reply)); the caller writes the prompts and
  the replies (`"True"`, `"feedback [RESULT] 4"`, `"... [RESULT] A"`, ...).
  `finetune_evaluators(jobs)` trains several at once on worker threads.
- **Show the work.** A tiny byte model does not learn to test two numbers for equality in one
  step within a CPU budget (trained to reply `True`/`False` alone, judges stayed at chance for
  900 steps), but it learns to compare two adjacent digits: let the reply start with
  `digit_marks(response, reference)` (`"65x 88= 00="` for 86 against 85), as the base's
  `compare_task` does, then give the verdict or the score.
- **Families.** `EvaluatorFamily(name, base, seed)`: a base config (size, schedule, data share)
  and a seed. Different families see different shares of the questions, start from different
  seeds and have different sizes, so they make different mistakes: what a jury needs.
  `pretrain_family_bases(families)` trains their bases at once.

Example (tiny sizes, seconds; with the default sizes and schedules, PoLL's judges built this
way reach Cohen's kappa 0.5-1 against exact labels, `paperlab/papers/poll/README.md`):

    from paperlab.core.data.graded import make_graded_items
    from paperlab.core.llm.evaluators import (EvaluatorBaseConfig, FinetuneConfig,
        digit_marks, finetune_evaluator, pretrain_evaluator_base)

    base = pretrain_evaluator_base(EvaluatorBaseConfig(steps=50), seed=0)

    def absolute(rng):                       # an ExampleFn: rng -> (messages, reply)
        item = make_graded_items(1, seed=rng)[0]
        prompt = (f"{item.instruction}\\nResponse: {item.response}\\n"
                  f"Reference: {item.reference}\\nScore 1-5:")
        work = digit_marks(item.response, item.reference)
        return [{"role": "user", "content": prompt}], f"{work} [RESULT] {item.score}"

    judge = finetune_evaluator(base, [(absolute, 1.0)], FinetuneConfig(steps=50), seed=0)
    # same names and shapes as base: judge.state_dict().keys() == base.state_dict().keys()
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from paperlab.core.artifacts import ModuleCodec
from paperlab.core.data.graded import NONSENSE, Question, read_int, sample_questions
from paperlab.core.llama import Llama
from paperlab.core.llm.tiny import (
    TOKENIZER,
    ChatJob,
    ExampleFn,
    Messages,
    TinyChatConfig,
    init_model,
    train_chat_model,
    train_chat_models,
)

__all__ = [
    "EvaluatorBaseConfig",
    "EvaluatorFamily",
    "EvaluatorJob",
    "FinetuneConfig",
    "answer_task",
    "base_codec",
    "base_tasks",
    "compare_task",
    "digit_marks",
    "finetune_evaluator",
    "finetune_evaluators",
    "in_share",
    "pretrain_evaluator_base",
    "pretrain_family_bases",
    "same_architecture",
]


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{owner}.{name}={value}: must be >= 1")


@dataclass(frozen=True)
class EvaluatorBaseConfig:
    """Size and pre-training of an evaluator base (a byte-level chat `Llama`).

    `data_share`: the share of the question space the base answers during pre-training (which
    questions, by `in_share` and the base's seed); the rest it meets only when judging.
    `answer_weight` / `compare_weight`: the mix of its two pre-training tasks."""

    dim: int = 64
    n_layers: int = 3
    n_heads: int = 4
    max_seq_len: int = 384
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-2
    warmup: int = 30
    weight_decay: float = 0.0
    data_share: float = 1.0
    digits: int = 2
    ops: str = "+-"
    answer_weight: float = 0.3
    compare_weight: float = 0.7

    def __post_init__(self) -> None:
        _positive(
            "EvaluatorBaseConfig",
            dim=self.dim,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            max_seq_len=self.max_seq_len,
            steps=self.steps,
            batch_size=self.batch_size,
            digits=self.digits,
        )
        if not 0.0 < self.data_share <= 1.0:
            raise ValueError(f"EvaluatorBaseConfig.data_share={self.data_share}: not in (0, 1]")
        if not self.ops or set(self.ops) - {"+", "-"}:
            raise ValueError(f"EvaluatorBaseConfig.ops={self.ops!r}: made of '+' and '-'")
        if min(self.answer_weight, self.compare_weight) < 0 or (
            self.answer_weight + self.compare_weight <= 0
        ):
            raise ValueError(
                "EvaluatorBaseConfig.answer_weight/compare_weight: >= 0 and not both 0"
            )
        self.chat_config()  # validates dim/n_heads, lr, warmup, weight_decay

    def chat_config(self) -> TinyChatConfig:
        """The `TinyChatConfig` of the base's architecture and pre-training schedule."""
        try:
            return TinyChatConfig(
                dim=self.dim,
                n_layers=self.n_layers,
                n_heads=self.n_heads,
                max_seq_len=self.max_seq_len,
                steps=self.steps,
                batch_size=self.batch_size,
                lr=self.lr,
                warmup=self.warmup,
                weight_decay=self.weight_decay,
            )
        except ValueError as e:
            raise ValueError(str(e).replace("TinyChatConfig", "EvaluatorBaseConfig")) from None


@dataclass(frozen=True)
class FinetuneConfig:
    """The schedule of fine-tuning a base into an evaluator (the architecture is the base's)."""

    steps: int = 250
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 20
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _positive("FinetuneConfig", steps=self.steps, batch_size=self.batch_size)
        if self.lr <= 0:
            raise ValueError(f"FinetuneConfig.lr={self.lr}: must be > 0")
        if self.warmup < 0:
            raise ValueError(f"FinetuneConfig.warmup={self.warmup}: must be >= 0")
        if self.weight_decay < 0:
            raise ValueError(f"FinetuneConfig.weight_decay={self.weight_decay}: must be >= 0")

    def chat_config(self, base: Llama) -> TinyChatConfig:
        c = base.config
        return TinyChatConfig(
            dim=c.dim,
            n_layers=c.n_layers,
            n_heads=c.n_heads,
            max_seq_len=c.max_seq_len,
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            warmup=self.warmup,
            weight_decay=self.weight_decay,
        )


@dataclass(frozen=True)
class EvaluatorFamily:
    """A family of evaluators: one base (its config and pre-training seed). Families differ in
    size, data share and seed, so their mistakes differ."""

    name: str
    base: EvaluatorBaseConfig = field(default_factory=EvaluatorBaseConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"EvaluatorFamily.name={self.name!r}: non-empty, without '/'")

    def knows(self, q: Question) -> bool:
        """Whether `q` lies in the share of questions this family's base was pre-trained on."""
        return in_share(q, self.base.data_share, self.seed)


# -- the base's pre-training tasks ----------------------------------------------------------------


def in_share(q: Question, share: float, seed: int) -> bool:
    """A fixed pseudo-random `share` of all questions, different for every `seed` (the same in
    every process: string seeds of `random.Random` do not depend on hash randomisation)."""
    if share >= 1.0:
        return True
    return random.Random(f"share|{seed}|{q.a}{q.op}{q.b}").random() < share


def answer_task(
    *, share: float = 1.0, seed: int = 0, digits: int = 2, ops: str = "+-"
) -> ExampleFn:
    """'What is 47+38?' -> '85', on the questions of the `share` (by `in_share`, `seed`)."""

    def example(rng: random.Random) -> tuple[Messages, str]:
        while True:
            q = sample_questions(1, seed=rng, digits=digits, ops=ops)[0]
            if in_share(q, share, seed):
                return [{"role": "user", "content": q.question}], q.answer

    return example


def digit_marks(response: str, reference: str, width: int = 3) -> str:
    """The digit-by-digit comparison of two numbers, units first: each pair is the response's
    digit, the reference's digit and `=` or `x` ("86" vs "85": ``"65x 88= 00="``). Numbers are
    right-aligned to `width` digits with zeros; a response without a number has `-` digits.
    A tiny model tests two adjacent digits for equality far sooner than two whole numbers, so
    evaluators can show this work before their verdict or score."""
    if width < 1:
        raise ValueError(f"digit_marks: width={width} must be >= 1")
    ref = read_int(reference)
    if ref is None:
        raise ValueError(f"digit_marks: reference {reference!r} holds no integer")
    got = read_int(response)
    a = "-" * width if got is None else got.lstrip("-").rjust(width, "0")[-width:]
    r = ref.lstrip("-").rjust(width, "0")[-width:]
    return " ".join(a[i] + r[i] + ("=" if a[i] == r[i] else "x") for i in range(width - 1, -1, -1))


def compare_task(*, digits: int = 2) -> ExampleFn:
    """'Compare 85 and 86.' -> '65x 88= 00= False' (`digit_marks`, then whether they are
    equal): half of the pairs equal, the others close (off by 1..9, by 10 or 100, or not a
    number) so that every digit matters."""
    hi = 2 * 10**digits

    def example(rng: random.Random) -> tuple[Messages, str]:
        x = rng.randrange(hi)
        if rng.random() < 0.5:
            y = str(x)
        elif rng.random() < 0.1:
            y = rng.choice(NONSENSE)
        else:
            v = -1
            while v < 0 or v == x:
                v = x + rng.choice([1, -1, 2, -2, 3, -3, 5, -7, 9, 10, -10, 20, 100, -100])
            y = str(v)
        reply = f"{digit_marks(y, str(x), digits + 1)} {y == str(x)}"
        return [{"role": "user", "content": f"Compare {y} and {x}."}], reply

    return example


def base_tasks(cfg: EvaluatorBaseConfig, seed: int) -> list[tuple[ExampleFn, float]]:
    """The base's pre-training mix: answering its share of the questions, comparing numbers."""
    tasks = [
        (
            answer_task(share=cfg.data_share, seed=seed, digits=cfg.digits, ops=cfg.ops),
            cfg.answer_weight,
        ),
        (compare_task(digits=cfg.digits), cfg.compare_weight),
    ]
    return [(fn, w) for fn, w in tasks if w > 0]


# -- training -------------------------------------------------------------------------------------


def pretrain_evaluator_base(
    cfg: EvaluatorBaseConfig, *, seed: int, device: str = "cpu", progress: bool = False
) -> Llama:
    """A freshly initialised tiny chat model pre-trained on `base_tasks(cfg, seed)`; seeded by
    `seed` (weights, task draws, examples, and which questions are in the data share)."""
    if not isinstance(cfg, EvaluatorBaseConfig):
        raise ValueError(
            f"pretrain_evaluator_base: cfg must be an EvaluatorBaseConfig, not {cfg!r}"
        )
    return train_chat_model(
        base_tasks(cfg, seed),
        cfg.chat_config(),
        seed=seed,
        device=device,
        progress=progress,
        desc="evaluator base",
    )


def pretrain_family_bases(
    families: Sequence[EvaluatorFamily],
    *,
    workers: int = 2,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Llama]:
    """Each family's base (`pretrain_evaluator_base(f.base, seed=f.seed)`), trained on
    `workers` threads at once; the result does not depend on `workers`."""
    names = [f.name for f in families]
    if not families or len(set(names)) != len(names):
        raise ValueError(f"pretrain_family_bases: families must be non-empty and distinct: {names}")
    jobs = [
        ChatJob(f.name, base_tasks(f.base, f.seed), f.base.chat_config(), f.seed) for f in families
    ]
    return train_chat_models(jobs, workers=workers, device=device, progress=progress)


def _check_base(base: Llama, who: str) -> None:
    if not isinstance(base, Llama) or base.config.vocab_size != TOKENIZER.vocab_size:
        raise ValueError(f"{who}: base must be a byte-level chat Llama (pretrain_evaluator_base)")


def _check_tasks(tasks: Sequence[tuple[ExampleFn, float]], who: str) -> None:
    if not tasks:
        raise ValueError(f"{who}: tasks must hold at least one (example_fn, weight)")
    for i, task in enumerate(tasks):
        if len(task) != 2 or not callable(task[0]) or task[1] < 0:
            raise ValueError(f"{who}: tasks[{i}] must be (example_fn, weight >= 0)")
    if sum(w for _, w in tasks) <= 0:
        raise ValueError(f"{who}: tasks' weights are all 0")


def finetune_evaluator(
    base: Llama,
    tasks: Sequence[tuple[ExampleFn, float]],
    cfg: FinetuneConfig | None = None,
    *,
    seed: int,
    device: str = "cpu",
    progress: bool = False,
) -> Llama:
    """A copy of `base` fine-tuned on the weighted mix of `tasks` (the loss on the replies only,
    `paperlab.core.llm.tiny.train_chat_model`); `base` itself is left unchanged. The result has
    the base's architecture and parameter names."""
    _check_base(base, "finetune_evaluator")
    _check_tasks(tasks, "finetune_evaluator")
    cfg = cfg or FinetuneConfig()
    model = copy.deepcopy(base).train()
    return train_chat_model(
        tasks,
        cfg.chat_config(base),
        seed=seed,
        device=device,
        progress=progress,
        desc="evaluator",
        model=model,
    )


@dataclass
class EvaluatorJob:
    """One evaluator of `finetune_evaluators`: its name, base, task mix, schedule and seed."""

    name: str
    base: Llama
    tasks: Sequence[tuple[ExampleFn, float]]
    cfg: FinetuneConfig = field(default_factory=FinetuneConfig)
    seed: int = 0


def finetune_evaluators(
    jobs: Sequence[EvaluatorJob],
    *,
    workers: int = 2,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Llama]:
    """`finetune_evaluator` for each job, on `workers` threads at once (one torch thread each);
    the result does not depend on `workers`. The bases are left unchanged."""
    names = [j.name for j in jobs]
    if not jobs or len(set(names)) != len(names):
        raise ValueError(
            f"finetune_evaluators: jobs must be non-empty with distinct names: {names}"
        )
    chat_jobs = []
    for job in jobs:
        _check_base(job.base, f"finetune_evaluators[{job.name}]")
        _check_tasks(job.tasks, f"finetune_evaluators[{job.name}]")
        chat_jobs.append(
            ChatJob(job.name, job.tasks, job.cfg.chat_config(job.base), job.seed, init=job.base)
        )
    return train_chat_models(chat_jobs, workers=workers, device=device, progress=progress)


def base_codec(cfg: EvaluatorBaseConfig, kind: str = "evaluator-base") -> ModuleCodec:
    """A `ModuleCodec` for `(base, info)` pairs of this config (the artifact disk cache):

    base, info = ctx.shared("base", lambda: (pretrain_evaluator_base(cfg, seed=s), {}),
                            spec=(cfg, s), codec=base_codec(cfg))"""
    return ModuleCodec(build=lambda: init_model(cfg.chat_config(), 0), kind=kind)


def same_architecture(a: Llama, b: Llama) -> bool:
    """Whether two models have the same parameter names and shapes (mergeable weights)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)
