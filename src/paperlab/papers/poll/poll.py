"""PoLL: a Panel of LLm evaluators (Verga et al. 2024, arXiv 2404.18796).

Instead of one large judge, several smaller judges from different model families each judge an
answer independently, and their judgments are pooled (Sec. 2.2): max (majority) voting for
binary QA correctness, average pooling for scores. The judges of one item are called
concurrently, so the panel's wall time is about its slowest judge's.

    panel = PanelOfJudges(client, ["command-r", "gpt-3.5", "haiku"])
    v = asyncio.run(panel.judge_qa("Capital of France?", "Paris", reference="Paris"))
    v.votes, v.verdict, v.cost

The analysis helpers below turn a run's records into what the paper reports: agreement with
human labels (Sec. 4.1), system rankings and their correlation (Sec. 4.2), and judge bias
(Sec. 4.3, `self_preference_bias`); costs come from `client.usage` (Sec. 4.4).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from paperlab.core.llm.client import Completion, LLMClient
from paperlab.core.stats import cohen_kappa, kendall_tau, pearson
from paperlab.papers.poll import prompts

PANEL = "panel"  # the column / row name of the pooled judgment in the analysis tables


# -- pooling (Sec. 2.2) ---------------------------------------------------------------------------


def max_vote(votes: Sequence[bool | None]) -> bool | None:
    """The majority of the parsed votes (Sec. 2.2, "max voting"). None votes (a judge's
    output stayed unparseable after its retries) abstain. With three judges and one abstention
    a 1-1 tie is possible: a tie resolves to False, the conservative "not shown correct".
    None only when every judge abstained."""
    cast = [v for v in votes if v is not None]
    if not cast:
        return None
    yes = sum(cast)
    return yes > len(cast) - yes


def average_pool(scores: Sequence[float | None]) -> float | None:
    """The mean of the parsed scores (Sec. 2.2, "average pooling"); None abstains, and the
    result is None only when every judge abstained."""
    cast = [float(s) for s in scores if s is not None]
    return sum(cast) / len(cast) if cast else None


# -- the panel ------------------------------------------------------------------------------------


@dataclass
class PanelVerdict:
    """One QA answer judged by the panel: each judge's vote and the pooled verdict."""

    votes: dict[str, bool | None]
    verdict: bool | None
    completions: dict[str, Completion]

    @property
    def cost(self) -> float:
        return sum(c.cost for c in self.completions.values())

    def record(self) -> dict[str, Any]:
        """The JSON-able fields of a results line."""
        return {"votes": self.votes, "verdict": self.verdict, **_accounting(self.completions)}


@dataclass
class PanelScore:
    """One answer scored by the panel: each judge's score and their mean."""

    scores: dict[str, int | None]
    mean: float | None
    completions: dict[str, Completion]

    @property
    def cost(self) -> float:
        return sum(c.cost for c in self.completions.values())

    def record(self) -> dict[str, Any]:
        return {"scores": self.scores, "mean": self.mean, **_accounting(self.completions)}


def _accounting(completions: Mapping[str, Completion]) -> dict[str, Any]:
    return {
        "cost": sum(c.cost for c in completions.values()),
        "costs": {j: c.cost for j, c in completions.items()},
        "attempts": {j: c.attempts for j, c in completions.items()},
    }


class PanelOfJudges:
    """A jury of judges (names of models in `client.config`), each asked independently.

    `parse_retries`: an unparseable judgment is regenerated up to this many more times before
    the judge abstains (None). At temperature 0 a deterministic endpoint repeats itself, so the
    retries only help with endpoints that are not (or at temperature > 0). `seed` (if given)
    goes with every request, so the retries' samples repeat from run to run on an endpoint
    that honours it (`paperlab serve` does)."""

    def __init__(
        self,
        client: LLMClient,
        judges: Sequence[str],
        *,
        temperature: float = 0.0,
        max_tokens: int = 16,
        parse_retries: int = 2,
        seed: int | None = None,
    ):
        judges = list(judges)
        if not judges:
            raise ValueError("PanelOfJudges: the jury is empty")
        if len(set(judges)) != len(judges):
            raise ValueError(f"PanelOfJudges: a judge is named twice in {judges}")
        for name in judges:  # fail now, naming the configured models, not on every item
            client.config.get(name).require("chat")
        self.client = client
        self.judges = judges
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.parse_retries = parse_retries
        self.seed = seed

    async def _ask_all(
        self, messages: list[dict[str, str]], parse: Callable[[str], Any]
    ) -> dict[str, Completion]:
        seeded = {} if self.seed is None else {"seed": self.seed}
        outs = await asyncio.gather(
            *(
                self.client.chat(
                    judge,
                    messages,
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                    parse=parse,
                    parse_retries=self.parse_retries,
                    **seeded,
                )
                for judge in self.judges
            )
        )
        return dict(zip(self.judges, outs, strict=True))

    async def judge_qa(
        self, question: str, answer: str, reference: str | None = None
    ) -> PanelVerdict:
        """Is `answer` correct? Each judge says True/False (against `reference` if given);
        the verdict is their `max_vote`."""
        messages = prompts.qa_messages(question, answer, reference)
        completions = await self._ask_all(messages, prompts.parse_verdict)
        votes = {j: c.parsed for j, c in completions.items()}
        return PanelVerdict(votes, max_vote(list(votes.values())), completions)

    async def score(self, question: str, answer: str, lo: int = 1, hi: int = 5) -> PanelScore:
        """Each judge rates `answer` from `lo` to `hi`; the panel's score is their mean."""
        messages = prompts.score_messages(question, answer, lo, hi)
        completions = await self._ask_all(messages, partial(prompts.parse_score, lo=lo, hi=hi))
        scores = {j: c.parsed for j, c in completions.items()}
        return PanelScore(scores, average_pool(list(scores.values())), completions)


# -- analysis -------------------------------------------------------------------------------------


def judge_table(
    records: Sequence[Mapping[str, Any]],
    judges: Sequence[str],
    *,
    per_judge: str = "votes",
    pooled: str = "verdict",
) -> dict[str, list[Any]]:
    """Columns of a run's records: each judge's judgments and the panel's (key `PANEL`), in
    record order. For score runs pass `per_judge="scores", pooled="mean"`."""
    table = {j: [r[per_judge].get(j) for r in records] for j in judges}
    table[PANEL] = [r[pooled] for r in records]
    return table


def accuracy(predictions: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Fraction of positions where the prediction equals the label. A None prediction (a vote
    that stayed unparseable) never equals a bool label, so it counts as a miss."""
    if len(predictions) != len(labels) or not len(labels):
        raise ValueError("accuracy: need two non-empty sequences of equal length")
    return sum(p == y for p, y in zip(predictions, labels, strict=True)) / len(labels)


def label_agreement(
    table: Mapping[str, Sequence[bool | None]], labels: Sequence[bool]
) -> dict[str, dict[str, float]]:
    """Per rater (judge or panel): accuracy and Cohen's kappa against the human labels
    (Sec. 4.1), and how many of its judgments were None. None judgments count as
    disagreements (None is its own label for kappa)."""
    return {
        rater: {
            "accuracy": accuracy(column, labels),
            "kappa": cohen_kappa(column, labels),
            "unparsed": float(sum(v is None for v in column)),
        }
        for rater, column in table.items()
    }


def system_scores(
    values: Sequence[bool | float | None], systems: Sequence[Hashable]
) -> dict[Hashable, float]:
    """Each system's mean judgment: for verdicts, the fraction of its answers judged correct;
    for scores, its mean score. None judgments are missing data and are skipped; a system
    with none left scores nan."""
    if len(values) != len(systems):
        raise ValueError("system_scores: values and systems differ in length")
    by_system: dict[Hashable, list[float]] = {}
    for value, system in zip(values, systems, strict=True):
        kept = by_system.setdefault(system, [])
        if value is not None:
            kept.append(float(value))
    return {s: (sum(v) / len(v) if v else math.nan) for s, v in by_system.items()}


def system_ranking(scores_by_system: Mapping[str, float]) -> list[str]:
    """Systems best first; equal scores by name, nan scores last."""

    def key(system: str) -> tuple[bool, float, str]:
        score = scores_by_system[system]
        return (math.isnan(score), -score if not math.isnan(score) else 0.0, system)

    return sorted(scores_by_system, key=key)


def ranking_agreement(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[float, float]:
    """(Kendall tau-b, Pearson) between two systems-to-score maps over their common systems
    with finite scores in both (Sec. 4.2: a judge's leaderboard vs the human one); nan, nan
    with fewer than two such systems."""
    common = sorted(s for s in a.keys() & b.keys() if math.isfinite(a[s]) and math.isfinite(b[s]))
    if len(common) < 2:
        return math.nan, math.nan
    x, y = [a[s] for s in common], [b[s] for s in common]
    return kendall_tau(x, y), pearson(x, y)


def self_preference_bias(
    verdicts: Sequence[bool | None],
    labels: Sequence[bool],
    answer_family: Sequence[str],
    judge_family: str,
) -> float:
    """How much more lenient a judge (or the panel) is toward wrong answers from its own model
    family than toward wrong answers from the other families (the intra-model bias of Sec. 4.3):

        P(verdict True | label False, answer family == judge_family)
      - P(verdict True | label False, answer family != judge_family)

    Positive: the judge passes its own family's mistakes more often. Only wrong answers count,
    so a family that simply answers better does not look favoured. A None verdict is not a
    pass. nan when either group of wrong answers is empty."""
    if not len(verdicts) == len(labels) == len(answer_family):
        raise ValueError("self_preference_bias: inputs differ in length")
    own: list[bool] = []
    other: list[bool] = []
    for verdict, label, family in zip(verdicts, labels, answer_family, strict=True):
        if not label:
            (own if family == judge_family else other).append(verdict is True)
    if not own or not other:
        return math.nan
    return sum(own) / len(own) - sum(other) / len(other)
