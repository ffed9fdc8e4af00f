"""CRAG's scoring (paper Sec. 4; the official `local_evaluation.py`, with its bugs fixed).

Every answer is **correct** (1), **missing** (0: "I don't know", or empty) or **incorrect**
(-1, a hallucination); the truthfulness score is accuracy - hallucination rate. The auto-evaluator
decides an answer as the official script meant to:

1. truncate the prediction to the token budget (75 tokens);
2. "i don't know" anywhere in it -> missing;
3. for each gold answer (the answer, then the alternative answers) in turn: an exact match
   (lower-cased, stripped) -> correct; "invalid" in both the prediction and the gold (a false
   premise recognised) -> correct; "invalid" in only one of them -> this gold does not match;
   otherwise the LLM judge (the official instruction prompt; the last JSON object of its reply;
   score 1 -> correct);
4. nothing matched -> incorrect.

The official script, as shipped, does not run (`prediction_lowercase` is read before it is
assigned) and has two more bugs fixed here, each with a test: it loops over the *characters* of
the gold answer string (a one-letter prediction equal to any letter of it is "exact"), and it
never looks at the alternative answers.

    judge = LLMJudge(client, "gpt-4o")            # or None: exact rules only
    items = score_records(records, predictions, judge=judge)
    summary(items)                                # accuracy, hallucination, missing, score
    breakdown(items, "domain")                    # the same per domain
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from paperlab.papers.crag.prompts import judge_messages

TOKEN_BUDGET = 75  # the official limit (Llama 2 tokens)
MISSING_PHRASE = "i don't know"
LABELS = ("correct", "missing", "incorrect")
POINTS = {"correct": 1, "missing": 0, "incorrect": -1}
BREAKDOWNS = ("domain", "question_type", "static_or_dynamic", "popularity")

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)

Judge = Callable[[str, str, str], Awaitable[int | None]]  # (query, gold, prediction) -> 1/0/None


def truncate(text: str, budget: int = TOKEN_BUDGET) -> str:
    """The prefix of `text` holding its first `budget` tokens.

    DEVIATION: tokens are words and punctuation marks (`\\w+|[^\\w\\s]`), not Llama 2's
    tokenizer (which cannot be downloaded here); a word is one token or more to Llama 2, so this
    budget is at least as generous as the official one."""
    if budget < 1:
        raise ValueError(f"budget={budget}: must be >= 1")
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, not {type(text).__name__}")
    matches = list(_TOKEN.finditer(text))
    if len(matches) <= budget:
        return text
    return text[: matches[budget - 1].end()]


def parse_judge_reply(reply: str) -> int | None:
    """The "score" (0 or 1) of the *last* JSON object in a judge's reply, or None.

    The official parser also takes the last `{...}` (a judge may correct itself: "Wait, no! ..."
    then a second object); it then searches `"score": <digits>` in it."""
    objects = re.findall(r"\{[^{}]*\}", reply or "")
    if not objects:
        return None
    last = objects[-1]
    try:
        value = json.loads(last).get("score")
    except (json.JSONDecodeError, AttributeError):
        m = re.search(r'"score"\s*:\s*"?(\d+)', last)
        value = m.group(1) if m else None
    try:
        score = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return score if score in (0, 1) else None


@dataclass
class Scored:
    """One scored answer: its label and how it was decided (`how`: empty, missing, exact,
    invalid, judge, judge-unparsed, no-judge, mismatch)."""

    interaction_id: str
    label: str
    how: str
    prediction: str
    domain: str = ""
    question_type: str = ""
    static_or_dynamic: str = ""
    popularity: str = ""

    @property
    def points(self) -> int:
        return POINTS[self.label]

    def record(self) -> dict[str, Any]:
        return asdict(self)


async def score_answer(
    query: str,
    answer: str,
    alternatives: Sequence[str],
    prediction: str,
    *,
    judge: Judge | None = None,
    budget: int = TOKEN_BUDGET,
) -> tuple[str, str]:
    """(label, how) of one prediction by the rules of the module docstring."""
    if not isinstance(prediction, str):
        raise ValueError(f"prediction must be a string, not {type(prediction).__name__}")
    pred = truncate(prediction, budget).strip()
    pred_low = pred.lower()
    if not pred_low:  # DEVIATION: the official script judges an empty answer; the paper
        return "missing", "empty"  # counts "a system error such as an empty response" missing
    if MISSING_PHRASE in pred_low.replace("’", "'"):
        return "missing", "missing"
    how = "mismatch"
    for gold in [answer, *alternatives]:  # the answers, not the characters of one answer
        gold_low = str(gold).strip().lower()
        invalid_pred, invalid_gold = "invalid" in pred_low, "invalid" in gold_low
        if pred_low == gold_low:
            return "correct", "exact"
        if invalid_pred and invalid_gold:
            return "correct", "invalid"
        if invalid_pred != invalid_gold:
            how = "invalid"
            continue
        if judge is None:
            how = "no-judge"
            continue
        verdict = await judge(query, str(gold), pred)
        if verdict == 1:
            return "correct", "judge"
        how = "judge" if verdict == 0 else "judge-unparsed"
    return "incorrect", how


def score_records(
    records: Sequence[Mapping[str, Any]],
    predictions: Mapping[str, str],
    *,
    judge: Judge | None = None,
    budget: int = TOKEN_BUDGET,
    concurrency: int = 16,
) -> list[Scored]:
    """Score the prediction of every record (by `interaction_id`); a record without a
    prediction is a ValueError naming it."""
    missing = [r["interaction_id"] for r in records if r["interaction_id"] not in predictions]
    if missing:
        raise ValueError(
            f"predictions: no prediction for {len(missing)} records (first: {missing[0]!r})"
        )

    async def one(r: Mapping[str, Any]) -> Scored:
        label, how = await score_answer(
            r["query"],
            r["answer"],
            r.get("alt_ans", []),
            predictions[r["interaction_id"]],
            judge=judge,
            budget=budget,
        )
        return Scored(
            r["interaction_id"],
            label,
            how,
            predictions[r["interaction_id"]],
            *(str(r.get(k, "")) for k in BREAKDOWNS),
        )

    async def run_all() -> list[Scored]:
        gate = asyncio.Semaphore(concurrency)

        async def bounded(r):
            async with gate:
                return await one(r)

        try:
            return list(await asyncio.gather(*(bounded(r) for r in records)))
        finally:  # the client's connections belong to this loop: close them in it
            client = getattr(judge, "client", None)
            if client is not None and hasattr(client, "aclose"):
                await client.aclose()

    return asyncio.run(run_all())


def summary(items: Sequence[Scored]) -> dict[str, float]:
    """Accuracy, hallucination and missing rates, and the truthfulness score."""
    n = len(items)
    if n == 0:
        return {"n": 0, "accuracy": 0.0, "hallucination": 0.0, "missing": 0.0, "score": 0.0}
    counts = {label: sum(i.label == label for i in items) for label in LABELS}
    acc, hal = counts["correct"] / n, counts["incorrect"] / n
    return {
        "n": n,
        "accuracy": acc,
        "hallucination": hal,
        "missing": counts["missing"] / n,
        "score": acc - hal,
    }


def breakdown(items: Sequence[Scored], by: str) -> dict[str, dict[str, float]]:
    """`summary` per value of `by` (domain, question_type, static_or_dynamic, popularity)."""
    if by not in BREAKDOWNS:
        raise ValueError(f"by={by!r}: one of {', '.join(BREAKDOWNS)}")
    groups: dict[str, list[Scored]] = {}
    for item in items:
        groups.setdefault(getattr(item, by), []).append(item)
    return {k: summary(v) for k, v in sorted(groups.items())}


class LLMJudge:
    """The auto-evaluator's LLM: the official instruction prompt over any OpenAI-compatible
    endpoint (`paperlab.core.llm.LLMClient`), greedy, the last JSON object of the reply.

    `style="mini"` sends only the official user message (the tiny judge trained here)."""

    def __init__(self, client: Any, model: str, *, style: str = "official", max_tokens: int = 256):
        judge_messages("q", "a", "p", style=style)  # validates style
        if max_tokens < 1:
            raise ValueError(f"max_tokens={max_tokens}: must be >= 1")
        client.config.get(model)  # an unknown model fails here, before any request
        self.client, self.model, self.style, self.max_tokens = client, model, style, max_tokens

    async def __call__(self, query: str, gold: str, prediction: str) -> int | None:
        out = await self.client.chat(
            self.model,
            judge_messages(query, gold, prediction, style=self.style),
            temperature=0.0,
            max_tokens=self.max_tokens,
            parse=parse_judge_reply,
            parse_retries=0,
        )
        return out.parsed


async def official_script_label(
    query: str,
    answer: str,
    alternatives: Sequence[str],
    prediction: str,
    *,
    judge: Judge | None = None,
    budget: int = TOKEN_BUDGET,
) -> str:
    """The label the official `local_evaluation.py` gives, for contrast (tests, the `scorer`
    claim): its logic with only the crash repaired (it reads `prediction_lowercase` before
    assigning it). It still loops over the characters of the gold answer and ignores the
    alternatives (`alternatives` is accepted and unused, as there); an unparsed judge reply
    leaves the answer incorrect; an empty prediction is judged, not missing."""
    del alternatives  # never read by the official script
    pred = truncate(prediction, budget).strip()
    pred_low = pred.lower()
    if MISSING_PHRASE in pred_low:
        return "missing"
    accuracy = -1
    for gold in answer:  # the official bug: the characters of one string
        gold_low = gold.lower()
        if pred_low == gold_low:
            accuracy = 1
            break
        if "invalid" in pred_low and "invalid" in gold_low:
            accuracy = 1
            break
        if ("invalid" in pred_low) != ("invalid" in gold_low):
            accuracy = 0
            continue
        if judge is not None:
            verdict = await judge(query, gold, pred)
            accuracy = -1 if verdict is None else verdict
            if accuracy == 1:
                break
    return "correct" if accuracy == 1 else "incorrect"
