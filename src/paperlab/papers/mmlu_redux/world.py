"""The miniature's world: multiple-choice questions about made-up facts ("What is the code of
kiv?"), grouped into subjects, whose answers are exact by construction; answer sheets of models
of known skill; and a tiny detector model that reads the detection programs' prompts.

- A subject is a set of facts. Each fact gives one clean record: the question, four choices
  (codes such as "K") with the right one at a random position, its index as the ground truth.
- Answerers (`SimulatedAnswerer`): DEVIATION: the paper re-scores the released outputs of 14
  HELM models; here an answer sheet comes from a simulated model that knows a given share of the
  facts (answers those right) and guesses uniformly otherwise, and guesses when the question no
  longer names its fact. Real models' answers come in through `answers_from_endpoint` (any
  OpenAI-compatible endpoint) or a JSONL of answers.
- The detector is a tiny chat model (`paperlab.core.llm.tiny`) trained on the detection
  programs' own prompts (short instructions: a DEVIATION from the official ~1,800-character
  ones, which a byte-level model of a few hundred tokens of context cannot take), on records
  corrupted with every error type. It knows no fact: a wrong ground truth is visible to it only
  through retrieval (the passage "The code of kiv is K." in its prompt).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from paperlab.core.data.facts import CODES, Fact, make_facts
from paperlab.papers.mmlu_redux.corrupt import corrupt
from paperlab.papers.mmlu_redux.detect import METHODS, Detector
from paperlab.papers.mmlu_redux.records import Record
from paperlab.papers.mmlu_redux.taxonomy import ERROR_TYPES, OK

N_CODES = 10
ALPHABET = CODES[:N_CODES]
# DEVIATION: one-line instructions for the tiny detector (the official ones: ~1,800 characters).
TINY_INSTRUCTION = "Classify."
TINY_COT_INSTRUCTION = "Think, classify."


def choice_text(code: str) -> str:
    return code


@dataclass
class World:
    facts: list[Fact]
    subjects: dict[str, list[Fact]]  # subject -> its facts

    @property
    def by_name(self) -> dict[str, Fact]:
        return {f.name: f for f in self.facts}

    def passages(self) -> list[str]:
        """The retrieval corpus: one sentence per fact."""
        return [f"The code of {f.name} is {f.code}." for f in self.facts]


def make_world(subjects: Sequence[str], per_subject: int, *, seed: int) -> World:
    if per_subject < 1 or not subjects:
        raise ValueError("make_world: need subjects and per_subject >= 1")
    facts = make_facts(len(subjects) * per_subject, seed=seed, n_codes=N_CODES)
    rng = random.Random(seed + 1)
    shuffled = rng.sample(facts, len(facts))
    groups = {s: shuffled[i * per_subject : (i + 1) * per_subject] for i, s in enumerate(subjects)}
    return World(facts, groups)


def clean_record(fact: Fact, subject: str, rng: random.Random) -> Record:
    wrong = rng.sample([c for c in ALPHABET if c != fact.code], 3)
    pos = rng.randrange(4)
    codes = wrong[:pos] + [fact.code] + wrong[pos:]
    return Record(
        question=fact.question,
        choices=[choice_text(c) for c in codes],
        answer=pos,
        subject=subject,
        id=f"{subject}-{fact.name}",
    )


def clean_records(world: World, *, seed: int) -> list[Record]:
    """One clean record per fact, subject by subject."""
    rng = random.Random(seed)
    return [clean_record(f, s, rng) for s, facts in world.subjects.items() for f in facts]


# -- answerers -------------------------------------------------------------------------------


def answer_messages(r: Record) -> list[dict[str, str]]:
    """The record as an MMLU question (choices lettered, any number of them)."""
    lines = [r.question] + [f"{chr(65 + i)}. {c}" for i, c in enumerate(r.choices)]
    return [{"role": "user", "content": "\n".join(lines) + "\nAnswer:"}]


def name_of(question: str) -> str | None:
    m = re.search(r"code of ([a-z]+)", question)
    return m.group(1) if m else None


# DEVIATION: simulated answer sheets stand in for the 14 HELM models' released outputs.
@dataclass
class SimulatedAnswerer:
    """A model of known skill: it knows the facts named in `known` and picks the choice holding
    the code; otherwise (an unknown fact, a question that no longer names one, a right code
    not among the choices) it picks a choice uniformly at random."""

    name: str
    known: dict[str, str]  # fact name -> code
    seed: int

    def answer(self, records: Sequence[Record]) -> list[int]:
        rng = random.Random(self.seed)
        out = []
        for r in records:
            code = self.known.get(name_of(r.question) or "")
            hits = [i for i, c in enumerate(r.choices) if code is not None and c.strip() == code]
            out.append(hits[0] if hits else rng.randrange(len(r.choices)))
        return out


def answerers(world: World, shares: Sequence[float], *, seed: int) -> list[SimulatedAnswerer]:
    """One answerer per share: each knows an independent random subset of that share."""
    out = []
    for i, share in enumerate(shares):
        rng = random.Random(seed * 1009 + i)
        known = rng.sample(world.facts, round(share * len(world.facts)))
        out.append(SimulatedAnswerer(f"model{i}", {f.name: f.code for f in known}, seed + i))
    return out


# -- the detector ----------------------------------------------------------------------------


def reasoning(r: Record, world: World, *, with_context: bool) -> str:
    """The step-by-step text a CoT reply writes before its JSON: the first failing step, or the
    fact recalled and the ground truth read."""
    if r.error_type == "bad_question_clarity":
        return "Step 1: the question is unclear."
    if r.error_type == "bad_options_clarity":
        return "Step 2: the options are unclear."
    if r.error_type == "no_correct_answer":
        return "Step 3: no option is right."
    if r.error_type == "multiple_correct_answers":
        return "Step 3: two options are right."
    truth = r.choices[r.answer]
    if not with_context:
        return f"Step 4: truth {truth}."
    fact = world.by_name[name_of(r.question)]
    return f"Step 4: context {fact.code}, truth {truth}."


def detector(
    method: str, world: World, *, shots: Sequence[Record] = (), retriever=None
) -> Detector:
    """A detection program with the tiny model's short instructions and compact replies."""
    with_context = retriever is not None
    return Detector(
        method=method,
        instruction=TINY_COT_INSTRUCTION if "cot" in method else TINY_INSTRUCTION,
        shots=shots,
        retriever=retriever,
        reasoning=lambda r: reasoning(r, world, with_context=with_context),
        max_tokens=96,
        compact=True,  # DEVIATION: the classification alone, not the five-key JSON
        layout="compact",  # DEVIATION: the compact record layout (detect.compact_verbalise)
    )


def detector_reply(d: Detector, r: Record) -> str:
    """What the detector model should answer to record `r` under program `d`."""
    body = d.answer_json(r.error_type)
    return f"{d.reasoning(r)}\n{body}" if "cot" in d.method else body


# -- training the detector -------------------------------------------------------------------

LABEL_MIX = {OK: 5, **{t: 2 for t in ERROR_TYPES}}  # without retrieval: ok a third of the time
# DEVIATION (the training mix): with a passage in the prompt, ok and wrong ground truth are
# drawn equally often (CONTEXT_PAIR_SHARE each), the four surface types share the rest. (The
# first mix drew a wrong ground truth more often than an ok record there, and the detector
# learnt to flag every record that came with a passage.)
CONTEXT_SHARE = 0.6  # training examples with a passage
CONTEXT_PAIR_SHARE = 0.35  # of those: ok, and as many wrong ground truths


def passage_of(world: World, question: str) -> str:
    """The fact's sentence (the oracle retrieval used for training examples)."""
    fact = world.by_name.get(name_of(question) or "")
    return f"The code of {fact.name} is {fact.code}." if fact else ""


def detection_task(world: World, methods: Sequence[str] = METHODS):
    """Training examples for the detector: a random fact's record corrupted with a random
    label, rendered by a random detection program (with the fact's passage CONTEXT_SHARE of the
    time; one solved shot for the few-shot programs), and the reply that program asks for.
    Without a passage a wrong ground truth cannot be seen, so those examples are not drawn."""
    subject_of = {f.name: s for s, fs in world.subjects.items() for f in fs}
    surface = [t for t in ERROR_TYPES if t != "wrong_groundtruth"]
    labels, weights = [OK, *surface], [LABEL_MIX[OK], *(LABEL_MIX[t] for t in surface)]

    def label_of(rng: random.Random, with_context: bool) -> str:
        if not with_context:
            return rng.choices(labels, weights)[0]
        u = rng.random()
        if u < 2 * CONTEXT_PAIR_SHARE:
            return OK if u < CONTEXT_PAIR_SHARE else "wrong_groundtruth"
        return rng.choice(surface)

    def record(rng: random.Random, with_context: bool) -> Record:
        fact = rng.choice(world.facts)
        label = label_of(rng, with_context)
        return corrupt(clean_record(fact, subject_of[fact.name], rng), label, rng)

    def example(rng: random.Random):
        method = rng.choice(list(methods))
        with_context = rng.random() < CONTEXT_SHARE
        retriever = (lambda q: [passage_of(world, q)]) if with_context else None
        shots = [record(rng, with_context)] if method.startswith("few_shot") else []
        d = detector(method, world, shots=shots, retriever=retriever)
        r = record(rng, with_context)
        return d.messages(r), detector_reply(d, r)

    return example


# DEVIATION: an auxiliary task in the detector's training mix: a passage and the question it
# answers -> the code. Short (~60 bytes), it teaches the tiny model to read a passage, which the
# detection prompts alone did not within the budget.
def reading_task(world: World):
    """Training examples: "The code of kiv is K.\nWhat is the code of kiv?" -> "K"."""

    def example(rng: random.Random):
        fact = rng.choice(world.facts)
        text = f"{passage_of(world, fact.question)}\n{fact.question}"
        return [{"role": "user", "content": text}], fact.code

    return example


def detector_tasks(world: World, reading_weight: float) -> list[tuple[Any, float]]:
    """The detector's training mix: the detection programs' examples (weight 1) and the
    reading task (`reading_weight`; 0 leaves it out)."""
    if reading_weight < 0:
        raise ValueError(f"reading_weight={reading_weight}: must be >= 0")
    tasks: list[tuple[Any, float]] = [(detection_task(world), 1.0)]
    return tasks + ([(reading_task(world), reading_weight)] if reading_weight > 0 else [])
