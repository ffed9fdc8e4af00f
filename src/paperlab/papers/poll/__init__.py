"""Replacing Judges with Juries: Evaluating LLM Generations with a Panel of Diverse Models
(Verga, Hofstätter, Althammer, Su, Piktus, Arkhangorodsky, Xu, White, Lewis; Cohere;
arXiv 2404.18796, 2024).

Idea: instead of one large judge (GPT-4), ask a panel of smaller judges from different model
families and pool their verdicts (max vote for True/False QA judgments, the mean for scores):
better agreement with humans, less intra-model bias, several times cheaper.

    from paperlab.papers.poll import PanelOfJudges
    panel = PanelOfJudges(client, ["command-r", "gpt-3.5", "haiku"])
    verdict = asyncio.run(panel.judge_qa(question, answer, reference))

The agreement statistics the paper reports (Cohen's kappa, Kendall tau-b, Pearson) are
`paperlab.core.stats`'s, re-exported here.
"""

from paperlab.core.stats import cohen_kappa, kendall_tau, pearson
from paperlab.papers.poll.poll import (
    PanelOfJudges,
    PanelScore,
    PanelVerdict,
    accuracy,
    average_pool,
    max_vote,
    self_preference_bias,
)

__all__ = [
    "PanelOfJudges",
    "PanelScore",
    "PanelVerdict",
    "accuracy",
    "average_pool",
    "cohen_kappa",
    "kendall_tau",
    "max_vote",
    "pearson",
    "self_preference_bias",
]
