"""The miniature's evaluators (Prometheus 2, Sec. 3): a shared tiny base
(`paperlab.core.llm.evaluators`), an absolute expert and a relative expert fine-tuned from it,
one model trained jointly on both formats, and the experts' weight merges.

The task is `paperlab.core.data.graded`: 2-digit arithmetic answered with graded errors, so the
true 1-5 score of every response is known by construction (it stands in for the GPT-4 / human
scores of the paper's benchmarks). Both formats use a reference answer, as the Feedback and
Preference Collections do; the feedback is the response's number against the reference, then
"[RESULT] score" (absolute) or "[RESULT] A|B" (relative).

The miniature's templates are compact versions of the official ones (see the DEVIATION below).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlab.core.data.graded import (
    GradedItem,
    graded_item,
    make_graded_items,
    read_int,
    response_with_score,
    sample_questions,
)
from paperlab.papers.prometheus2.prompts import absolute_messages, relative_messages

# DEVIATION: a byte-level tiny model cannot read the ~1500-byte official prompt cheaply; the
# miniature's templates are compact versions of the official ones (same fields, same output
# format, no system prompt). The library keeps the official templates for real models.
ABSOLUTE_TEMPLATE = "{instruction}\nResponse: {response}\nReference: {reference_answer}\nScore:"
RELATIVE_TEMPLATE = (
    "{instruction}\nA: {response_A}\nB: {response_B}\nReference: {reference_answer}\nBetter:"
)
RUBRIC = "Is the answer correct? 5 exact, 4 off by one, 3 off by 2-9, 2 off by 10+, 1 no number"
# the evaluators, in serving order; MERGES name how each merged evaluator is made
BASE = "base"  # the shared base after its format stage: knows the format, not the rubric
EXPERTS = ("absolute", "relative")
JOINT = "joint"
MERGES: dict[str, dict[str, Any]] = {
    "linear": dict(method="linear", weights=[0.5, 0.5]),  # Prometheus 2 7B (Sec. 3.3)
    "task_arithmetic": dict(method="task_arithmetic", weights=[1.0, 1.0]),
    "ties": dict(method="ties", density=0.5),
    "dare_linear": dict(method="dare_linear", weights=[1.0, 1.0], density=0.5),
    "dare_ties": dict(method="dare_ties", density=0.5),
}


def digit_check(response: str, reference: str, width: int = 3) -> str:
    """The feedback's work: the response's number against the reference, digit by digit, units
    first; each pair is the response's digit, the reference's digit and `=` or `x` ("86" vs
    "85": "65x 88= 00="); a response without a number has `-` digits. A tiny model compares
    two adjacent digits far sooner than two whole numbers, so it writes this out before its
    score, as Prometheus 2 writes its feedback before "[RESULT]"."""
    ref = read_int(reference)
    if ref is None:
        raise ValueError(f"digit_check: reference {reference!r} holds no integer")
    got = read_int(response)
    a = "-" * width if got is None else got.lstrip("-").rjust(width, "0")[-width:]
    r = ref.lstrip("-").rjust(width, "0")[-width:]
    return " ".join(a[i] + r[i] + ("=" if a[i] == r[i] else "x") for i in range(width - 1, -1, -1))


# DEVIATION: the feedback is this digit check (then, for pairs, each response's score), not
# free text: the Feedback / Preference Collections' GPT-4 rationales have no analogue here.
def absolute_example(rng: random.Random) -> tuple[list[dict[str, str]], str]:
    """A graded response -> "65x 88= 00= [RESULT] 4" (feedback, then the true score)."""
    item = make_graded_items(1, seed=rng)[0]
    messages = absolute_messages(
        item.instruction,
        item.response,
        RUBRIC,
        item.reference,
        template=ABSOLUTE_TEMPLATE,
        system=False,
    )
    return messages, f"{digit_check(item.response, item.reference)} [RESULT] {item.score}"


@dataclass(frozen=True)
class Pair:
    """Two responses to one question with different true scores; `label` is the better."""

    a: GradedItem
    b: GradedItem

    @property
    def label(self) -> str:
        return "A" if self.a.score > self.b.score else "B"


def make_pair(rng: random.Random) -> Pair:
    q = sample_questions(1, seed=rng)[0]
    sa, sb = rng.sample(range(1, 6), 2)
    a = graded_item(q, response_with_score(q, sa, rng), "a")
    b = graded_item(q, response_with_score(q, sb, rng), "b")
    return Pair(a, b)


def relative_example(rng: random.Random) -> tuple[list[dict[str, str]], str]:
    """A pair -> "A 65x 88= 00= 4, B 55= 88= 00= 5 [RESULT] B" (feedback: each response checked
    and scored; then the better response)."""
    p = make_pair(rng)
    messages = relative_messages(
        p.a.instruction,
        p.a.response,
        p.b.response,
        RUBRIC,
        p.a.reference,
        template=RELATIVE_TEMPLATE,
        system=False,
    )
    feedback = ", ".join(
        f"{side} {digit_check(g.response, g.reference)} {g.score}"
        for side, g in (("A", p.a), ("B", p.b))
    )
    return messages, f"{feedback} [RESULT] {p.label}"


# -- the base's format stage -------------------------------------------------------------------
# DEVIATION: the shared base is our arithmetic base plus this format stage, standing in for the
# paper's instruction-tuned Mistral (Sec. 4). The paper's experts start from a base that
# already follows instructions and writes a critique, so the two fine-tunings only teach each
# its format's grading. Our arithmetic base has never seen an evaluation prompt; fine-tuned
# from it, the experts both learn the output format itself from scratch, and their merges wrote
# byte soup (every merge 100% unparseable, README). The format stage gives the shared base what
# the instruction-tuned base has: on the evaluation prompts of both formats it writes the
# feedback (the digit check) and the output shape, "[RESULT]" included, but its results are
# drawn at random, independent of the item: it knows the format, not the rubric. Grading (which
# score, which response) is what the experts learn.


def _random_scores(reply: str, rng: random.Random) -> str:
    """`reply` with every score and the result replaced by a random one (shape kept)."""
    feedback, result = reply.rsplit(" [RESULT] ", 1)
    if result in ("A", "B"):
        sides = []
        for side in feedback.split(", "):
            head, _ = side.rsplit(" ", 1)
            sides.append(f"{head} {rng.randint(1, 5)}")
        return f"{', '.join(sides)} [RESULT] {rng.choice('AB')}"
    return f"{feedback} [RESULT] {rng.randint(1, 5)}"


def absolute_format_example(rng: random.Random) -> tuple[list[dict[str, str]], str]:
    """An absolute prompt -> its digit check, then "[RESULT] n" with n random (format only)."""
    messages, reply = absolute_example(rng)
    return messages, _random_scores(reply, rng)


def relative_format_example(rng: random.Random) -> tuple[list[dict[str, str]], str]:
    """A pair -> each response's digit check with a random score, then a random "[RESULT] A|B"."""
    messages, reply = relative_example(rng)
    return messages, _random_scores(reply, rng)


def format_stage(
    base: Any, cfg: Any, seed: int, *, device: str = "cpu", progress: bool = False
) -> Any:
    """A copy of the pre-trained `base` fine-tuned for `cfg.format_steps` steps on both formats'
    shapes with random results (`absolute_format_example`, `relative_format_example`)."""
    from paperlab.core.llm.evaluators import FinetuneConfig, finetune_evaluator

    fcfg = FinetuneConfig(
        steps=cfg.format_steps,
        batch_size=cfg.batch_size,
        lr=cfg.format_lr,
        warmup=cfg.finetune_warmup,
        weight_decay=0.0,
    )
    tasks = [(absolute_format_example, 1.0), (relative_format_example, 1.0)]
    return finetune_evaluator(base, tasks, fcfg, seed=seed + 7, device=device, progress=progress)


def eval_items(n: int, seed: int) -> list[GradedItem]:
    """Held-out absolute items (a seed stream the training never draws from)."""
    return make_graded_items(n, seed=random.Random(f"prometheus2-eval-abs|{seed}"))


def eval_pairs(n: int, seed: int) -> list[Pair]:
    rng = random.Random(f"prometheus2-eval-rel|{seed}")
    return [make_pair(rng) for _ in range(n)]


def train_evaluators(
    cfg: Any,
    seed: int,
    folder: Path,
    *,
    base: Any = None,
    device: str = "cpu",
    progress: bool = False,
) -> list[Path]:
    """Fine-tune the two experts and the joint model from `base` (the shared base after its
    format stage; pre-trained and format-staged here when None), merge the experts every way of
    `MERGES`; save each, the base first, as a servable chat-model folder (`evaluator_names`
    order)."""
    import torch

    from paperlab.core.llm.evaluators import (
        EvaluatorJob,
        finetune_evaluators,
        pretrain_evaluator_base,
    )
    from paperlab.core.llm.tiny import save_chat_model
    from paperlab.papers.prometheus2.merge import merge_state_dicts

    if base is None:
        base = pretrain_evaluator_base(
            cfg.base_config(), seed=seed, device=device, progress=progress
        )
        if cfg.format_steps > 0:
            base = format_stage(base, cfg, seed, device=device, progress=progress)
    ft = cfg.finetune_config(1)
    # joint training sees as many examples as the two experts together (Sec. 6)
    joint_ft = cfg.finetune_config(2)
    # the joint model (twice the steps) first: on 2 workers the experts run beside it
    jobs = [
        EvaluatorJob(
            JOINT, base, [(absolute_example, 1.0), (relative_example, 1.0)], joint_ft, seed + 3
        ),
        EvaluatorJob("absolute", base, [(absolute_example, 1.0)], ft, seed + 1),
        EvaluatorJob("relative", base, [(relative_example, 1.0)], ft, seed + 2),
    ]
    models = finetune_evaluators(jobs, workers=cfg.workers, device=device, progress=progress)
    models = {BASE: base, **models}
    dirs = [save_chat_model(models[n], folder / n, n) for n in (BASE, *EXPERTS, JOINT)]
    base_sd = base.state_dict()
    experts = [models[name].state_dict() for name in EXPERTS]
    for name, recipe in MERGES.items():
        merged = merge_state_dicts(base_sd, experts, seed=seed, **recipe)
        model = models[EXPERTS[0]]
        with torch.no_grad():
            clone = type(model)(model.config)
            clone.load_state_dict(merged)
        dirs.append(save_chat_model(clone.eval(), folder / f"merge-{name}", f"merge-{name}"))
    return dirs


def evaluator_names() -> Sequence[str]:
    return (BASE, *EXPERTS, JOINT, *(f"merge-{m}" for m in MERGES))
