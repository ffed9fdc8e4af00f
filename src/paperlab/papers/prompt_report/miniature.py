"""The miniature world: a tiny chat model that answers synthetic multiple-choice questions
through every prompt shape of the case study, and can read exemplars.

The questions are about made-up facts ("What is the code of kiv?", four code options, the
right one at a random position), so every answer is exact. The model (the "reader") learns a
random share of the facts (`known_rate`): zero-shot it is right on those and guesses on the
rest. It also learns few-shot prompts in which one exemplar may be about the same fact (what
KNN selection finds for a question seen before, Sec. 2.2.1.2): there it can copy the code from
the exemplar and find its option. So exemplars carry information the model lacks, and a model
trained to read them can use it: the premise of few-shot prompting (Sec. 2.2.1). Chain-of-
thought replies state the fact first ("kiv: K. The answer is (B)."), then pick the option.

Every training prompt is rendered by the technique objects the case study runs, so the model
meets the same strings at test time.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paperlab.core.llm.tiny import ChatJob, ExampleFn, save_chat_model, train_chat_models
from paperlab.core.mc import N_OPTIONS, MCItem
from paperlab.papers.prompt_report import prompts as P
from paperlab.papers.prompt_report.techniques import FewShot, FewShotCoT, ZeroShot, ZeroShotCoT

SUBJECT = "facts"
CODES = "FGHJKLMNPQ"  # option values: capitals that are not option letters (A-D)
NAME_LEN = 3
# DEVIATION: the tiny byte-level model reads the compact MMLU layout without the paper's base
# instruction (every byte is a token it must be trained on); real models get the paper's
# instruction and its question formats (prompts.BASE_INSTRUCTION, `--format paper2`).
MINI_INSTRUCTION = ""
MINI_FORMAT = "mmlu"
# DEVIATION: the miniature answers with the option's text ("The answer is K."), read back to
# its letter by `prompts.value_extract`; the paper's answers are letters ("(B)"). Measured: a
# 3-layer byte model trained 400 steps (122 CPU-s) on letter answers stayed at chance (23%,
# always "(C)"): finding which letter holds the code is an induction-head skill it had not
# formed; recalling or copying a code it forms quickly.
MINI_STYLE = "value"


def make_facts(n: int, seed: int) -> dict[str, str]:
    """`n` made-up facts: distinct 3-letter names, each with a code from CODES."""
    rng = random.Random(seed)
    names: set[str] = set()
    while len(names) < n:
        names.add("".join(rng.choices(string.ascii_lowercase, k=NAME_LEN)))
    return {name: rng.choice(CODES) for name in sorted(names)}


def known_names(facts: dict[str, str], rate: float, seed: int) -> set[str]:
    """The facts the reader learns (a seeded random `rate` share)."""
    names = sorted(facts)
    random.Random(seed).shuffle(names)
    return set(names[: round(rate * len(names))])


def name_of(item: MCItem) -> str:
    return item.question.removeprefix("What is the code of ").rstrip("?")


def make_item(name: str, code: str, rng: random.Random, *, id: str = "") -> MCItem:
    """A four-option question about one fact: the right code at a random position, three
    other codes; the exemplar reasoning ("kiv: K.") is in `meta`."""
    wrong = rng.sample([c for c in CODES if c != code], N_OPTIONS - 1)
    pos = rng.randrange(N_OPTIONS)
    wrong.insert(pos, code)
    return MCItem(
        f"What is the code of {name}?",
        tuple(wrong),
        pos,
        subject=SUBJECT,
        id=id,
        meta={"reasoning": f"{name}: {code}."},
    )


def make_items(facts: dict[str, str], n: int, seed: int, *, prefix: str = "q") -> list[MCItem]:
    """`n` questions about the facts in turn (every fact once before any twice), shuffled
    options; the same arguments give the same items."""
    rng = random.Random(seed)
    names = sorted(facts)
    rng.shuffle(names)
    return [
        make_item(names[i % len(names)], facts[names[i % len(names)]], rng, id=f"{prefix}{i}")
        for i in range(n)
    ]


class _Shots:
    """A fixed list of exemplars: a selector for training prompts."""

    def __init__(self, shots: Sequence[MCItem]):
        self.shots = list(shots)

    def select(self, item: MCItem) -> list[MCItem]:
        return self.shots


def training_tasks(cfg: Any, seed: int) -> list[tuple[ExampleFn, float]]:
    """The reader's task mix (equal weights): zero-shot and zero-shot CoT on the facts it
    knows; few-shot and few-shot CoT about any fact, where for a fact it does not know one
    exemplar is about the same fact (it must read it), and for a fact it knows one is with
    probability `cfg.same_shot_rate`. `cfg`: a `PromptReportConfig`."""
    facts = make_facts(cfg.n_facts, seed)
    known = sorted(known_names(facts, cfg.known_rate, seed))
    names = sorted(facts)
    kw = dict(instruction=MINI_INSTRUCTION, fmt=MINI_FORMAT, style=MINI_STYLE)

    def reply(item: MCItem, cot: bool) -> str:
        answer = P.solved_answer(item, MINI_STYLE)
        return f"{P.reasoning(item)} {answer}" if cot else answer

    def zero_shot(cot: bool) -> ExampleFn:
        technique = ZeroShotCoT(**kw) if cot else ZeroShot(**kw)

        def example(rng: random.Random):
            name = rng.choice(known)
            item = make_item(name, facts[name], rng)
            return technique.render(item), reply(item, cot)

        return example

    def few_shot(cot: bool) -> ExampleFn:
        def example(rng: random.Random):
            name = rng.choice(names)
            item = make_item(name, facts[name], rng)
            others = rng.sample([n for n in names if n != name], cfg.shots)
            shots = [make_item(n, facts[n], rng) for n in others]
            if name not in known_set or rng.random() < cfg.same_shot_rate:
                # last: where KNN puts the most similar exemplar (selection.KNNSelector)
                shots[-1] = make_item(name, facts[name], rng)
            sel = _Shots(shots)
            technique = FewShotCoT(selector=sel, **kw) if cot else FewShot(selector=sel, **kw)
            return technique.render(item), reply(item, cot)

        return example

    known_set = set(known)
    return [
        (zero_shot(False), 1.0),
        (zero_shot(True), 1.0),
        (few_shot(False), 1.0),
        (few_shot(True), 1.0),
    ]


def train_reader(
    cfg: Any, seed: int, directory: Path, *, progress: bool = False, device: str = "cpu"
) -> list[Path]:
    """Train the reader (a `PromptReportConfig` `cfg`) and save it under `directory`."""
    job = ChatJob("reader", training_tasks(cfg, seed), cfg.model(), seed=1000 * seed + 7)
    model = train_chat_models([job], workers=1, progress=progress, device=device)["reader"]
    return [save_chat_model(model, directory / "reader", "reader")]
