"""Error detectors (Sec. 5) and their metrics.

LLM detectors are prompt programs over `paperlab.core.llm` (any OpenAI-compatible endpoint):

- ``zero_shot``: the official taxonomy instruction as the system message, the verbalised
  record as the user message, a JSON assessment back;
- ``few_shot``: the same, with solved examples as user/assistant turns before the record (the
  repository's `few_shot_prompt`);
- ``zero_shot_cot`` / ``few_shot_cot``: the official step-by-step instruction; the reply
  reasons first and ends with the JSON summary;
- any of them ``+ retrieval``: passages retrieved for the question (MiniLM over a passage set,
  standing in for the official Lucene/FAISS indexes) prepended as context.

`heuristic_detect` is the baseline: rules over the record's surface, no model.

Metrics (`detection_metrics`): the error class is the positive class. (The repository's
`compute_metrics_binary` treats "ok" as positive, which scores how well a detector finds clean
questions; we invert it, as the issue and the paper's prose intend.) Precision, recall, F1 and
F2 overall (error vs ok) and per error type (one type vs everything else).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from paperlab.papers.mmlu_redux.records import Record
from paperlab.papers.mmlu_redux.taxonomy import (
    ERROR_TYPES,
    INSTRUCTION,
    OK,
    is_error,
    parse_classification,
    verbalise,
)

COT_INSTRUCTION = (
    "# Task:\n"
    "Given a triple consisting of a multiple choice question, its choices, and the corresponding "
    "ground truth answer, your task is to determine whether the ground truth answer is correct "
    "or not.\n\n"
    "# Instructions:\n"
    "For each question, let's review step by step:\n\n"
    "## Step 1: Question Presentation\n"
    "1. Is the question well-presented? Assess clarity, grammar, and sufficiency of "
    "information.\n"
    "   - If Yes, proceed to Step 2.\n"
    "   - If No, classify the issue as 'Bad Question Clarity' and stop further evaluation.\n\n"
    "## Step 2: MC Options Presentation\n"
    "2. Are the multiple choice (MC) options well-presented? Check if the options are clear, "
    "distinct, and relevant to the question.\n"
    "   - If Yes, proceed to Step 3.\n"
    "   - If No, classify the issue as 'Bad Options Clarity' and stop further evaluation.\n\n"
    "## Step 3: Answer Evaluation\n"
    "3. Is there one, more than one, or no potentially correct answer in the options list?\n"
    "   - If one, proceed to Step 4.\n"
    "   - If more than one, classify the issue as 'Multiple Correct Answers' and stop further "
    "evaluation.\n"
    "   - If no correct answer, classify the issue as 'No Correct Answer' and stop further "
    "evaluation.\n\n"
    "## Step 4: Ground Truth Answer Evaluation\n"
    "4. Is the ground truth answer correct?\n"
    "   - If Yes, classify as 'OK'.\n"
    "   - If No, classify as 'Wrong Groundtruth'.\n\n"
    "## Summary\n"
    "Provide the summary of the assessments in JSON format with the keys 'Question "
    "Presentation', 'MC Options Presentation', 'Answer Evaluation', 'Ground Truth Answer "
    "Evaluation', and 'Classification'.\n"
    "The possible values for 'classification' are: OK, Wrong Groundtruth, No Correct Answer, "
    "Multiple Correct Answers, Bad Options Clarity, or Bad Question Clarity.\n\n"
    "## Example Summary Format\n"
    "FOLLOW THE EXACT EXAMPLE FINAL ANSWER FORMAT BELOW AS A FINAL SUMMARY\n"
    "# Final Answer:\n"
    '{"Question Presentation": "OK", "MC Options Presentation": "OK", "Answer Evaluation": '
    '"One", "Ground Truth Answer Evaluation": "Correct", "Classification": "OK"}'
)
METHODS = ("zero_shot", "few_shot", "zero_shot_cot", "few_shot_cot")
TITLES = {
    OK: "OK",
    "bad_question_clarity": "Bad Question Clarity",
    "bad_options_clarity": "Bad Options Clarity",
    "no_correct_answer": "No Correct Answer",
    "multiple_correct_answers": "Multiple Correct Answers",
    "wrong_groundtruth": "Wrong Groundtruth",
    "expert": "Expert",
}


def assessment(label: str) -> dict[str, str]:
    """The JSON assessment the instructions ask for, filled in for a known label (what a
    few-shot example's answer turn holds)."""
    steps = ["bad_question_clarity", "bad_options_clarity"]
    out = {
        "Question Presentation": "Not OK" if label == steps[0] else "OK",
        "MC Options Presentation": "Not OK" if label == steps[1] else "OK",
        "Answer Evaluation": {"multiple_correct_answers": "More Than One"}.get(
            label, "None" if label == "no_correct_answer" else "One"
        ),
        "Ground Truth Answer Evaluation": "Incorrect"
        if label == "wrong_groundtruth"
        else "Correct",
        "Classification": TITLES[label],
    }
    return out


LAYOUTS = ("official", "compact")


# DEVIATION: a compact layout of the record for byte-level models with a few hundred tokens of
# context (the official template's headers cost ~60 bytes a record, twice in a few-shot prompt):
# the retrieved passages (one a line, no header), the question, the lettered choices and
# "Truth: X. text".
def compact_verbalise(
    question: str, choices: Sequence[str], answer: int | None, passages: Sequence[str] = ()
) -> str:
    """The record as the `passages`, `question`, one `X. choice` line per choice and
    `Truth: X. text`."""
    lines = [*passages, question, *(f"{chr(65 + i)}. {c}" for i, c in enumerate(choices))]
    shown = "n/a" if answer is None else f"{chr(65 + answer)}. {choices[answer]}"
    return "\n".join([*lines, f"Truth: {shown}"])


Retriever = Callable[[str], Sequence[str]]
Reasoner = Callable[[Record], str]  # a record -> the reasoning written before the JSON


@dataclass
class Detector:
    """One detection program. `instruction`: the system message (the official one by default;
    small models may be given a shorter one). `shots`: solved examples for the few-shot
    methods. `retriever`: question -> passages for the retrieval variant. `reasoning`: for the
    CoT few-shot examples, the reasoning written before each example's JSON."""

    method: str = "zero_shot"
    instruction: str | None = None
    shots: Sequence[Record] = ()
    retriever: Retriever | None = None
    reasoning: Reasoner | None = None
    max_tokens: int = 512
    compact: bool = False  # answer turns hold only {"Classification": ...} (small models)
    layout: str = "official"  # or "compact" (`compact_verbalise`)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: unknown {self.method!r}; one of {', '.join(METHODS)}")
        if self.method.startswith("few_shot") and not self.shots:
            raise ValueError(f"method {self.method}: needs shots (solved example records)")
        if self.method == "few_shot_cot" and self.reasoning is None:
            raise ValueError("method few_shot_cot: needs reasoning (record -> text) for its shots")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout: unknown {self.layout!r}; one of {', '.join(LAYOUTS)}")
        if self.instruction is None:
            self.instruction = COT_INSTRUCTION if "cot" in self.method else INSTRUCTION

    @property
    def name(self) -> str:
        return self.method + ("+retrieval" if self.retriever is not None else "")

    def user_message(self, r: Record) -> str:
        passages = list(self.retriever(r.question)) if self.retriever is not None else []
        if self.layout == "compact":
            return compact_verbalise(r.question, r.choices, r.answer, passages)
        text = verbalise(r.question, r.choices, r.answer)
        if passages:
            text = "Context:\n" + "\n".join(passages) + "\n\n" + text
        return text

    def answer_json(self, label: str) -> str:
        """The JSON an answer turn holds for `label` (only its classification if compact)."""
        full = assessment(label)
        return json.dumps({"Classification": full["Classification"]} if self.compact else full)

    def answer_turn(self, r: Record) -> str:
        body = self.answer_json(r.error_type)
        if self.method == "few_shot_cot":
            return f"{self.reasoning(r)}\n{body}"
        return body

    def messages(self, r: Record) -> list[dict[str, str]]:
        """The chat messages of this program for one record (deterministic)."""
        msgs = [{"role": "system", "content": self.instruction}]
        for shot in self.shots if self.method.startswith("few_shot") else ():
            msgs.append({"role": "user", "content": self.user_message(shot)})
            msgs.append({"role": "assistant", "content": self.answer_turn(shot)})
        msgs.append({"role": "user", "content": self.user_message(r)})
        return msgs


@dataclass
class Detection:
    label: str | None  # None: the reply named no label (counted as "ok": nothing flagged)
    reply: str
    messages: list[dict[str, str]] = field(repr=False, default_factory=list)


async def detect_one(client, model: str, detector: Detector, r: Record) -> Detection:
    """Run one detector on one record through an `LLMClient` (greedy, as the paper's runs)."""
    msgs = detector.messages(r)
    out = await client.chat(model, msgs, temperature=0.0, max_tokens=detector.max_tokens)
    return Detection(parse_classification(out.text), out.text, msgs)


async def detect_all(
    client, model: str, detector: Detector, records: Sequence[Record], *, concurrency: int = 4
) -> list[Detection]:
    """`detect_one` over many records, `concurrency` requests at a time, in input order."""
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency}: must be >= 1")
    gate = asyncio.Semaphore(concurrency)

    async def one(r: Record) -> Detection:
        async with gate:
            return await detect_one(client, model, detector, r)

    return list(await asyncio.gather(*(one(r) for r in records)))


# ---------------------------------------------------------------------------------------------
# The baseline: surface rules, no model

_EXTERNAL = re.compile(
    r"\b(above|below|figure|table|passage|earlier case|previous|question \d+)\b", re.I
)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def heuristic_detect(r: Record, *, expected_choices: int = 4) -> str:
    """The label simple rules give: no ground truth -> no correct answer; an unusual number of
    choices or an empty choice -> bad options clarity; two choices equal after
    normalisation -> multiple correct answers; a question that points at something not shown
    (a table, a figure, another question) or has fewer than three words -> bad question
    clarity; otherwise ok. (Nothing here can notice a wrong ground truth.)"""
    if r.answer is None:
        return "no_correct_answer"
    if len(r.choices) != expected_choices or any(not c.strip() for c in r.choices):
        return "bad_options_clarity"
    normed = [_norm(c) for c in r.choices]
    if len(set(normed)) < len(normed):
        return "multiple_correct_answers"
    if _EXTERNAL.search(r.question) or len(r.question.split()) < 3:
        return "bad_question_clarity"
    return OK


# ---------------------------------------------------------------------------------------------
# Metrics: the error class is positive


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0

    def f(beta: float) -> float:
        b2 = beta * beta
        return (1 + b2) * p * r / (b2 * p + r) if (b2 * p + r) > 0 else 0.0

    return {"precision": p, "recall": r, "f1": f(1.0), "f2": f(2.0)}


def detection_metrics(
    truth: Sequence[str], predicted: Sequence[str | None]
) -> dict[str, dict[str, float]]:
    """{"overall": P/R/F1/F2 of error vs ok, "exact": share of exact labels, <type>: P/R/F1/F2
    of that type vs the rest}. A prediction of None (no label) counts as ok. Truth labels
    "expert" are left out (undecided)."""
    if len(truth) != len(predicted):
        raise ValueError(f"truth and predicted differ in length: {len(truth)} vs {len(predicted)}")
    pairs = [(t, p or OK) for t, p in zip(truth, predicted, strict=True) if t != "expert"]
    if not pairs:
        raise ValueError("truth: no labelled record")
    out: dict[str, dict[str, float]] = {}
    tp = sum(is_error(t) and is_error(p) for t, p in pairs)
    fp = sum(not is_error(t) and is_error(p) for t, p in pairs)
    fn = sum(is_error(t) and not is_error(p) for t, p in pairs)
    out["overall"] = _prf(tp, fp, fn)
    out["overall"]["exact"] = sum(t == p for t, p in pairs) / len(pairs)
    for kind in ERROR_TYPES:
        tp = sum(t == kind and p == kind for t, p in pairs)
        fp = sum(t != kind and p == kind for t, p in pairs)
        fn = sum(t == kind and p != kind for t, p in pairs)
        out[kind] = {**_prf(tp, fp, fn), "support": float(sum(t == kind for t, _ in pairs))}
    return out


def flat_metrics(metrics: Mapping[str, Mapping[str, float]], prefix: str) -> dict[str, float]:
    """{f"{prefix}_{group}_{name}": value}: a claim's measured figures."""
    return {
        f"{prefix}_{group}_{name}": float(v)
        for group, values in metrics.items()
        for name, v in values.items()
    }
