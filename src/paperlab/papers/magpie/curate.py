"""Tagging, deduplication, filtering and export of Magpie data (Sec. 2.2 and 3).

- **Tags** (the official `unitag.py` missions): `difficulty` (very easy .. very hard, with the
  user's intent and the knowledge needed), `input_quality` (very poor .. excellent, with an
  explanation) and `task_category` (one primary tag of the official 12, plus other tags).
  `LLMTagger` asks an evaluator model for each, as JSON, at temperature 0; a reply that is not
  that JSON leaves the tag None (as the official script does). `RuleTagger` tags the
  miniature's exact tasks by rule (`tasks.parse`).
- **Deduplication** (the official `gen_dis.py`): sentence embeddings of the instructions
  (all-MiniLM-L6-v2 here, normalised), each instruction's nearest neighbour distance
  (squared L2, what a FAISS `IndexFlatL2` returns) and, within `threshold` (0.05), the lowest
  conversation id of its duplicate group (`min_similar_conversation_id`).
- **The filter** (the official `data_filter.ipynb`): input quality >= `min_quality`
  (average), reward > -10 where a reward was tagged, no instruction ending in ':', one
  conversation per duplicate group (the lowest id), then the `keep` longest responses.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from paperlab.core.embed import MiniLM  # noqa: F401 - re-exported (magpie.MiniLM)
from paperlab.core.errors import UserError
from paperlab.papers.magpie import tasks

TASK_CATEGORIES = (  # the official 12 task tags (str_utils.input_classification)
    "Information seeking",
    "Reasoning",
    "Planning",
    "Editing",
    "Coding & Debugging",
    "Math",
    "Role playing",
    "Data analysis",
    "Creative writing",
    "Advice seeking",
    "Brainstorming",
    "Others",
)
QUALITY_LEVELS = ("very poor", "poor", "average", "good", "excellent")
DIFFICULTY_LEVELS = ("very easy", "easy", "medium", "hard", "very hard")
DEDUP_THRESHOLD = 0.05  # gen_dis.py's default distance threshold
MIN_REWARD = -10.0  # the official filter keeps instruct_reward > -10


# ---------------------------------------------------------------------------------------------
# Tagging

DIFFICULTY_PROMPT = """Identify what the user wants, then rate how hard the query below is.

Query:
```
{instruction}
```

Reply with JSON only:
{{"intent": "The user wants to ...", "knowledge": "To solve this, a model needs to know ...", \
"difficulty": "very easy|easy|medium|hard|very hard"}}"""

QUALITY_PROMPT = """Rate the query below for clarity, specificity and coherence:
very poor (unclear or incoherent, essential information missing), poor (needs significant
clarification), average (moderately clear, may need some details), good (clear and specific),
excellent (very clear and specific, with all the context a full answer needs).

Query:
```
{instruction}
```

Reply with JSON only:
{{"explanation": "strengths and weaknesses of the query", \
"input_quality": "very poor|poor|average|good|excellent"}}"""

CATEGORY_PROMPT = """Tag the query below with its task. Choose one primary tag from this list,
and any others that also apply: {tags}.

Query:
```
{instruction}
```

Reply with JSON only:
{{"primary_tag": "<one tag>", "other_tags": ["<tag>", ...]}}"""


class Tagger(Protocol):
    def tag(self, instructions: Sequence[str]) -> list[dict[str, Any]]: ...


class RuleTagger:
    """Exact tags for the miniature's task family (`tasks.py`): the instruction is parsed back
    into (task, arguments). Quality: excellent (a phrasing verbatim, arguments in the training
    range), good (the relaxed phrasing: case, final punctuation), average (parses, arguments
    outside the range), poor (a task keyword, but no phrasing), very poor (none)."""

    name = "rule:tasks.parse"

    def tag(self, instructions: Sequence[str]) -> list[dict[str, Any]]:
        return [self.tag_one(i) for i in instructions]

    def tag_one(self, instruction: str) -> dict[str, Any]:
        p = tasks.parse(instruction)
        if p is None:
            low = instruction.lower()
            quality = "poor" if any(k in low for k in tasks.KEYWORDS) else "very poor"
            return {
                "input_quality": quality,
                "quality_explanation": "not one of the task phrasings",
                "difficulty": None,
                "intent": None,
                "knowledge": None,
                "task_category": "Others",
                "other_task_category": [],
                "tagger": self.name,
            }
        if p.in_domain:
            quality = "excellent" if p.exact else "good"
        else:
            quality = "average"
        return {
            "input_quality": quality,
            "quality_explanation": f"task {p.task}, arguments {list(p.args)}",
            "difficulty": _rule_difficulty(p),
            "intent": f"The user wants to {p.task} {' '.join(p.args)}",
            "knowledge": f"the {p.task} task",
            "task_category": tasks.TASKS[p.task].category,
            "other_task_category": [],
            "tagger": self.name,
        }


def _rule_difficulty(p: tasks.Parsed) -> str:
    """Longer operands and answers are harder for the tiny model: a rule, not a judgement."""
    size = len(p.args[0]) if tasks.TASKS[p.task].kind == "word" else len(p.answer or "") + 2
    return DIFFICULTY_LEVELS[min(max(size - 2, 0), len(DIFFICULTY_LEVELS) - 1)]


def parse_tag_json(text: str) -> dict[str, Any] | None:
    """The first JSON object in a tagger's reply (code fences and prose around it allowed)."""
    start = text.find("{")
    while start != -1:
        depth = 0
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                try:
                    value = json.loads(text[start : end + 1])
                except json.JSONDecodeError:
                    break
                return value if isinstance(value, dict) else None
        start = text.find("{", start + 1)
    return None


class LLMTagger:
    """The three official tagging missions, asked of `model` through `client` (temperature 0).
    A reply that is not the JSON asked for, or names a level/tag not on the scale, leaves that
    tag None."""

    def __init__(self, client: Any, model: str, *, max_tokens: int = 512, concurrency: int = 8):
        self.client, self.model = client, model
        self.max_tokens, self.concurrency = max_tokens, concurrency
        client.config.get(model)  # unknown model: one error naming the config

    async def _ask(self, prompt: str) -> dict[str, Any] | None:
        out = await self.client.chat(
            self.model,
            [{"role": "user", "content": prompt}],
            temperature=0.0,
            max_tokens=self.max_tokens,
        )
        return parse_tag_json(out.text)

    async def _tag_one(self, instruction: str) -> dict[str, Any]:
        d = await self._ask(DIFFICULTY_PROMPT.format(instruction=instruction)) or {}
        q = await self._ask(QUALITY_PROMPT.format(instruction=instruction)) or {}
        tags = ", ".join(TASK_CATEGORIES)
        c = await self._ask(CATEGORY_PROMPT.format(instruction=instruction, tags=tags)) or {}
        difficulty = d.get("difficulty") if d.get("difficulty") in DIFFICULTY_LEVELS else None
        quality = q.get("input_quality") if q.get("input_quality") in QUALITY_LEVELS else None
        category = c.get("primary_tag") if c.get("primary_tag") in TASK_CATEGORIES else None
        others = c.get("other_tags") if isinstance(c.get("other_tags"), list) else []
        return {
            "input_quality": quality,
            "quality_explanation": q.get("explanation"),
            "difficulty": difficulty,
            "intent": d.get("intent"),
            "knowledge": d.get("knowledge"),
            "task_category": category,
            "other_task_category": [t for t in others if t in TASK_CATEGORIES],
            "tagger": self.model,
        }

    def tag(self, instructions: Sequence[str]) -> list[dict[str, Any]]:
        from paperlab.core.llm.results import gather_bounded

        return self.client.run(gather_bounded(instructions, self._tag_one, self.concurrency))


# ---------------------------------------------------------------------------------------------
# Embeddings and deduplication


def nearest_neighbours(
    embeddings: np.ndarray, ids: Sequence[Any], *, threshold: float = DEDUP_THRESHOLD
) -> list[dict[str, Any]]:
    """Per row: `min_neighbor_distance` (squared L2 to its nearest other row), `repeat_count`
    (other rows within `threshold`) and `min_similar_conversation_id` (the lowest id of its
    group, itself included; None when it has no neighbour within `threshold`).

    Exact search in blocks of 1024 rows (numpy); at Magpie's scale (millions of rows) this is
    where a FAISS index goes (`faiss.IndexFlatL2`, `index.search(block, k=500)`, as the
    official gen_dis.py does through `datasets.add_faiss_index`)."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(ids):
        raise ValueError(f"embeddings must be (n, d) with n = len(ids) = {len(ids)}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    sq = (x * x).sum(1)
    out = []
    for start in range(0, len(x), 1024):
        block = x[start : start + 1024]
        d = np.maximum(sq[start : start + len(block), None] + sq[None, :] - 2 * block @ x.T, 0)
        for r, row in enumerate(d):
            i = start + r
            row[i] = np.inf
            near = np.flatnonzero(row < threshold)
            first = int(min(near.min(), i)) if len(near) else None
            out.append(
                {
                    "min_neighbor_distance": float(row.min()) if len(x) > 1 else None,
                    "repeat_count": int(len(near)),
                    "min_similar_conversation_id": None if first is None else ids[first],
                }
            )
    return out


# ---------------------------------------------------------------------------------------------
# Curation: tag, deduplicate, filter


def curate(
    records: Sequence[Mapping[str, Any]],
    *,
    tagger: Tagger,
    embedder: Any,
    threshold: float = DEDUP_THRESHOLD,
) -> list[dict[str, Any]]:
    """Every record with its tags and its nearest-neighbour fields added (none dropped)."""
    records = [dict(r) for r in records]
    for r in records:
        if "conversation_id" not in r or not isinstance(r.get("instruction"), str):
            raise UserError(
                f"record {r.get('conversation_id')!r}: needs conversation_id and instruction"
            )
    instructions = [r["instruction"] for r in records]
    for r, t in zip(records, tagger.tag(instructions), strict=True):
        r.update(t)
    ids = [r["conversation_id"] for r in records]
    near = nearest_neighbours(embedder.encode(instructions), ids, threshold=threshold)
    for r, n in zip(records, near, strict=True):
        r.update(n)
        r["instruction_length"] = len(r["instruction"])
        r["response_length"] = len(r.get("response") or "")
    return records


def passes(record: Mapping[str, Any], *, min_quality: str = "average") -> bool:
    """The official filter's per-record conditions."""
    if min_quality not in QUALITY_LEVELS:
        raise UserError(
            f"min_quality must be one of {', '.join(QUALITY_LEVELS)}, got {min_quality!r}"
        )
    quality = record.get("input_quality")
    if quality not in QUALITY_LEVELS or QUALITY_LEVELS.index(quality) < QUALITY_LEVELS.index(
        min_quality
    ):
        return False
    reward = record.get("instruct_reward")
    if reward is not None and not reward > MIN_REWARD:
        return False
    instruction = record.get("instruction") or ""
    if not instruction or instruction.endswith(":") or not record.get("response"):
        return False
    group = record.get("min_similar_conversation_id")
    return group is None or group == record["conversation_id"]


def magpie_filter(
    records: Sequence[Mapping[str, Any]], *, min_quality: str = "average", keep: int | None = None
) -> list[dict[str, Any]]:
    """The records that pass, the `keep` with the longest responses (all when None), in
    conversation-id order."""
    kept = [dict(r) for r in records if passes(r, min_quality=min_quality)]
    if keep is not None:
        if keep < 1:
            raise UserError(f"keep must be >= 1, got {keep}")
        kept = sorted(kept, key=lambda r: -len(r.get("response") or ""))[:keep]
    return sorted(kept, key=lambda r: str(r["conversation_id"]).zfill(12))


# ---------------------------------------------------------------------------------------------
# Export and statistics


def to_sharegpt(record: Mapping[str, Any]) -> dict[str, Any]:
    """ShareGPT style: `conversations` [{"from": "human"|"gpt", "value"}], every tag kept."""
    out = {k: v for k, v in record.items() if k != "conversations"}
    conv = record.get("conversations") or [
        {"from": "human", "value": record.get("instruction", "")},
        {"from": "gpt", "value": record.get("response", "")},
    ]
    return {"conversation_id": record.get("conversation_id"), "conversations": conv, **out}


def to_plain(record: Mapping[str, Any]) -> dict[str, Any]:
    """Plain: instruction, response (and instruction_2, ...), every tag kept."""
    return {k: v for k, v in record.items() if k != "conversations"}


def write_jsonl(
    records: Iterable[Mapping[str, Any]], path: str | Path, *, fmt: str = "sharegpt"
) -> Path:
    """Write records as JSONL (`fmt`: sharegpt or plain) to a temp file, then rename."""
    convert = {"sharegpt": to_sharegpt, "plain": to_plain}.get(fmt)
    if convert is None:
        raise UserError(f"format must be sharegpt or plain, got {fmt!r}")
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; the output is a JSONL file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(convert(r), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def well_formed(record: Mapping[str, Any]) -> bool:
    """An instruction that is non-empty, ended by the model (not cut by max_tokens), not a
    bare lead-in ending in ':', and answered."""
    instruction = (record.get("instruction") or "").strip()
    return bool(
        instruction
        and record.get("instruction_finish") != "length"
        and not instruction.endswith(":")
        and re.search(r"\w", instruction)
        and record.get("response")
    )


def stats(
    records: Sequence[Mapping[str, Any]], kept: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Well-formed rate, distinct rate, duplicate rate and tag histograms."""
    n = len(records)
    if not n:
        return {"n": 0}
    instructions = [r.get("instruction") or "" for r in records]
    dup = [
        r.get("min_similar_conversation_id") not in (None, r.get("conversation_id"))
        for r in records
    ]
    out: dict[str, Any] = {
        "n": n,
        "well_formed_rate": sum(map(well_formed, records)) / n,
        "distinct_rate": len(set(instructions)) / n,
        "duplicate_rate": sum(dup) / n,
        "mean_instruction_chars": float(np.mean([len(i) for i in instructions])),
        "mean_response_chars": float(np.mean([len(r.get("response") or "") for r in records])),
    }
    for tag in ("input_quality", "difficulty", "task_category"):
        if any(tag in r for r in records):
            out[tag] = dict(Counter(str(r.get(tag)) for r in records).most_common())
    if kept is not None:
        out["kept"] = len(kept)
        out["kept_rate"] = len(kept) / n
    return out


def format_stats(s: Mapping[str, Any]) -> str:
    lines = []
    for k, v in s.items():
        if isinstance(v, dict):
            lines.append(f"{k}: " + ", ".join(f"{a} {b}" for a, b in v.items()))
        elif isinstance(v, float):
            lines.append(f"{k}: {v:.3f}")
        else:
            lines.append(f"{k}: {v}")
    return "\n".join(lines)
