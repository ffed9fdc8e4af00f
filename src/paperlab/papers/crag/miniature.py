"""The miniature's models: a tiny reader (the "LLM" of the RAG systems) and a tiny judge (the
auto-evaluator's LLM), both byte-level chat models trained here and served by `paperlab serve`.

**The reader** learns two things at once:
- *closed-book knowledge*: "question: what is the eps of kiv?" -> the value as of the world's
  `CUTOFF_DAY`, for the entities a closed-book model knows (`World.known`: most head entities,
  few tail ones). Asked about anything else it makes a value up: an LLM's hallucination.
- *reading*: a prompt with references built as the RAG systems build theirs (the pages of a
  question, HTML -> sentence chunks -> the top-k chunks, optionally KG sentences first) ->
  the value of the first reference that states the asked fact, or "i don't know" when none
  does. The reading questions are about a *training world* with other entities (names unseen
  in the evaluation world), so the reader must read; it never sees the evaluation questions.
  DEVIATION: its training prompts rank the chunks by word overlap with the question, not by
  MiniLM (identical rankings on these templated sentences; MiniLM would cost minutes here).

**The judge** is the core evaluator recipe (`paperlab.core.llm.evaluators`: a base pre-trained
on comparing numbers, fine-tuned): the official user message ("Question: ...\\n Ground truth:
...\\n Prediction: ...\\n") -> the comparison of the answer's characters (`answer_marks`), then
the official output's JSON object, `{"score": 1}` or `{"score": 0}`.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paperlab.core.llm.evaluators import digit_marks
from paperlab.papers.crag.prompts import answer_messages, judge_messages
from paperlab.papers.crag.rag import page_chunks
from paperlab.papers.crag.world import (
    ATTRIBUTES,
    CUTOFF_DAY,
    DOMAINS,
    POPULARITY,
    World,
    make_question,
    make_world,
    result_plan,
    search_result,
    sentence,
)

READER, JUDGE = "crag-reader", "crag-judge"
IDK = "i don't know"
_WORD = re.compile(r"[a-z0-9]+")


# ---------------------------------------------------------------------------------------------
# The reader's tasks


def read_answer(query: str, references: Sequence[str], entity: str, attr: str) -> str:
    """What a faithful reader answers: the value of the first reference stating `attr` of
    `entity`, else "i don't know"."""
    key = f"the {attr} of {entity} is "
    for ref in references:  # best first
        if ref.startswith(key) and ref.endswith("."):
            return ref[len(key) : -1]
    return IDK


def lexical_top_k(query: str, chunks: Sequence[str], k: int, rng: random.Random) -> list[str]:
    """The `k` chunks sharing the most words with `query` (ties in random order)."""
    words = set(_WORD.findall(query.lower()))
    keyed = [(-len(words & set(_WORD.findall(c.lower()))), rng.random(), c) for c in chunks]
    return [c for *_, c in sorted(keyed)[:k]]


def kg_facts(world: World, entity: str, query: str) -> list[str]:
    """The KG's sentences about an entity that state an attribute the question names (as
    `rag.kg_sentences` renders and filters them)."""
    return [
        sentence(entity, a.name, world.value(entity, a.name))
        for a in ATTRIBUTES[world.entities[entity].domain]
        if world.in_kg(entity, a.name) and f" {a.name} of " in query
    ]


def reading_task(train_world: World, *, k: int, kg_k: int, kg_share: float = 0.4):
    """Reading examples from `train_world`'s simple questions (module docstring)."""

    pages: dict[tuple[str, int], list[str]] = {}  # (entity, day) -> its chunks

    def chunks_of(entity: str, day: int) -> list[str]:
        if (entity, day) not in pages:
            pages[entity, day] = page_chunks([search_result(train_world, entity, day)])
        return pages[entity, day]

    def example(rng: random.Random) -> tuple[list[dict[str, str]], str]:
        q = make_question(train_world, "simple", rng.choice(DOMAINS), rng.choice(POPULARITY), rng)
        entity, attr = q["paperlab"]["entities"][0], q["paperlab"]["attribute"]
        plan = result_plan(train_world, [entity], rng)
        chunks = list(dict.fromkeys(c for name, day in plan for c in chunks_of(name, day)))
        refs = lexical_top_k(q["query"], chunks, k, rng)
        if rng.random() < kg_share:
            facts = kg_facts(train_world, entity, q["query"])
            refs = lexical_top_k(q["query"], facts, kg_k, rng) + refs
        messages = answer_messages(q["query"], "", refs, style="mini")
        return messages, read_answer(q["query"], refs, entity, attr)

    return example


def closed_book_task(world: World):
    """The closed-book facts: the known entities' values on `CUTOFF_DAY`."""
    known = sorted(world.known)
    if not known:
        raise ValueError("closed_book_task: the world has no known entities")

    def example(rng: random.Random) -> tuple[list[dict[str, str]], str]:
        e = rng.choice(known)
        a = rng.choice(ATTRIBUTES[world.entities[e].domain])
        query = f"what is the {a.name} of {e}?"
        return answer_messages(query, "", None, style="mini"), world.value(e, a.name, CUTOFF_DAY)

    return example


def training_world(world: World, seed: int) -> World:
    """A world of other entities (names not in `world`) for the reading examples."""
    for attempt in range(100):
        other = make_world(len(world.in_domain("open")), seed=10_000 + 97 * seed + attempt)
        if not set(other.entities) & set(world.entities):
            return other
    raise RuntimeError("training_world: could not draw disjoint names")


# ---------------------------------------------------------------------------------------------
# The judge's task


def answer_marks(prediction: str, gold: str) -> str:
    """The judge's work: the character-by-character comparison of the answer with the gold
    (`digit_marks` over 4 digits for a number; the last word's letters for a name)."""
    if re.search(r"\d", gold):
        return digit_marks(prediction, gold, width=4)
    g = (_WORD.findall(gold.lower()) or ["-"])[-1]
    words = _WORD.findall(prediction.lower())
    p = (words[-1] if words else "").ljust(len(g), "-")[: len(g)]
    return " ".join(a + b + ("=" if a == b else "x") for a, b in zip(p, g, strict=True))


PHRASES = ("{}", "it is {}", "the answer is {}", "i think {}", "so {}")


def judged_item(rng: random.Random) -> tuple[str, str, str, int]:
    """(query, gold, prediction, label): a non-exact prediction and whether it gives the gold
    (label 1) or another value (0), as a judge meets them when exact match failed."""
    kind = rng.random()
    if kind < 0.4:
        gold, wrong = str(rng.randint(10, 99)), None
    elif kind < 0.6:
        gold, wrong = str(rng.randint(1950, 2019)), None
    elif kind < 0.75:
        gold, wrong = str(rng.randint(20, 198)), None
    else:
        gold = "".join(rng.choices(string.ascii_lowercase, k=3))
        wrong = "".join(rng.choices(string.ascii_lowercase, k=3))
    label = int(rng.random() < 0.5)
    if label:
        value = gold
    elif wrong is not None:
        value = wrong
    else:
        value = str(max(0, int(gold) + rng.choice([1, -1, 2, -3, 5, 9, 10, -10, 20, 100])))
    template = rng.choice(PHRASES[1:]) if label or rng.random() < 0.7 else PHRASES[0]
    entity = "".join(rng.choices(string.ascii_lowercase, k=3))
    attr = rng.choice([a for d in DOMAINS for a in ATTRIBUTES[d] if a.kind != "entity"]).name
    return f"what is the {attr} of {entity}?", gold, template.format(value), label


def judge_reply(prediction: str, gold: str, label: int) -> str:
    return f'{answer_marks(prediction, gold)} {{"score": {label}}}'


def judge_task():
    def example(rng: random.Random) -> tuple[list[dict[str, str]], str]:
        query, gold, pred, label = judged_item(rng)
        return judge_messages(query, gold, pred, style="mini"), judge_reply(pred, gold, label)

    return example


# ---------------------------------------------------------------------------------------------
# Training both (into a folder `paperlab serve` serves)


def train_models(
    cfg: Any, world: World, seed: int, folder: Path, *, device: str = "cpu", progress: bool = False
) -> list[Path]:
    """Train the reader and the judge on two threads at once (the reader in one; the judge's
    base, then the judge, in the other; one torch thread each, so the result does not depend
    on the scheduling) and save them under `folder`."""
    from concurrent.futures import ThreadPoolExecutor

    from paperlab.core.device import torch_threads
    from paperlab.core.llm.evaluators import (
        EvaluatorBaseConfig,
        FinetuneConfig,
        base_tasks,
        finetune_evaluator,
    )
    from paperlab.core.llm.tiny import (
        TinyChatConfig,
        init_model,
        save_chat_model,
        train_chat_model,
    )

    reader_cfg = TinyChatConfig(
        dim=cfg.reader_dim,
        n_layers=cfg.reader_layers,
        n_heads=4,
        max_seq_len=cfg.reader_seq_len,
        steps=cfg.reader_steps,
        batch_size=cfg.batch_size,
        lr=cfg.reader_lr,
        warmup=min(50, cfg.reader_steps),
        weight_decay=0.0,
    )
    tasks = [
        (reading_task(training_world(world, seed), k=cfg.k, kg_k=cfg.kg_k), cfg.reading_weight),
        (closed_book_task(world), 1.0 - cfg.reading_weight),
    ]
    base_cfg = EvaluatorBaseConfig(
        dim=cfg.judge_dim,
        n_layers=cfg.judge_layers,
        max_seq_len=192,
        steps=cfg.judge_base_steps,
        batch_size=cfg.batch_size,
        digits=3,
    )

    # both initialised here, before the threads: torch's global RNG is not thread-safe, and a
    # model initialised in one thread while the other (re)seeds it would differ run to run
    reader0 = init_model(reader_cfg, seed)
    base0 = init_model(base_cfg.chat_config(), seed)

    def reader_job() -> Any:
        return train_chat_model(
            tasks,
            reader_cfg,
            seed=seed,
            device=device,
            progress=progress,
            desc=READER,
            model=reader0,
        )

    def judge_job() -> Any:
        base = train_chat_model(
            base_tasks(base_cfg, seed),
            base_cfg.chat_config(),
            seed=seed,
            device=device,
            progress=progress,
            desc="judge base",
            model=base0,
        )
        schedule = FinetuneConfig(steps=cfg.judge_steps, batch_size=cfg.batch_size)
        return finetune_evaluator(
            base, [(judge_task(), 1.0)], schedule, seed=seed, device=device, progress=progress
        )

    with torch_threads(1), ThreadPoolExecutor(max_workers=2) as pool:
        reader_future, judge_future = pool.submit(reader_job), pool.submit(judge_job)
        reader, judge = reader_future.result(), judge_future.result()
    return [
        save_chat_model(reader.cpu(), folder / READER, READER),
        save_chat_model(judge.cpu(), folder / JUDGE, JUDGE),
    ]
