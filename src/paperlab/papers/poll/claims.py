"""PoLL's claims in miniature (Verga et al. 2024, arXiv 2404.18796).

(1) kappa: a panel of three small judges (max vote) agrees with the labels at least as well
           as every single judge, the large one included (Sec. 4.1: PoLL kappa above every
           single judge, GPT-4 included). Powered first: every judge's kappa >= 0.4.
(2) bias:  a judge's leniency toward its own family's mistakes shrinks in the panel
           (Sec. 4.3: less intra-model bias).
(3) cost:  the panel costs less than the single large judge (Sec. 4.4: over 7x cheaper).

Miniature (miniature.py): judges are tiny chat models from the evaluator recipe
(`paperlab.core.llm.evaluators`: a base per family, fine-tuned into a judge); they judge
held-out answers to 2-digit arithmetic against the reference answer (the paper's KILT QA
setting); the answers come from rule-defined systems with graded errors and from the judge
families themselves; labels are exact by construction. Judges are served by `paperlab serve`
and queried over HTTP with the real client. Prices come from a table proportional to parameter
count (USD per 1K tokens = params / 1e6). With `--config FILE` naming real judges in a `[poll]`
table (`jury`, `big`), the same claims run on real models judging the jury's answers to
3-digit multiplications. The world (trained, disk-cached, served judges) is in world.py, the
experiments in experiments.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from paperlab.claims import Claim, PaperClaims, Verdict, at_least, custom
from paperlab.papers.poll import experiments


@dataclass
class PoLLClaimsConfig:
    # one small judge family each: size, share of the questions, (seed: by position)
    family_dims: tuple[int, ...] = (48, 64, 80)
    family_layers: tuple[int, ...] = (2, 2, 2)
    family_shares: tuple[float, ...] = (0.4, 0.5, 0.6)
    big_dim: int = 128  # the large judge: bigger, and it trains on more of the questions
    big_layers: int = 2
    big_share: float = 0.8
    base_steps: int = 300  # pre-training of each family's base (short examples)
    steps: int = 200  # fine-tuning a small family's base into a judge
    big_steps: int = 300
    batch_size: int = 32
    base_lr: float = 1e-2  # at width 64; wider models train at 64/dim of it (miniature.lr_scale)
    lr: float = 3e-3
    answer_weight: float = 0.1  # fine-tuning keeps answering (the families are systems too)
    n_items: int = 200  # held-out answers of the rule-defined systems, judged
    n_questions: int = 40  # held-out questions each family answers; the answers are judged
    concurrency: int = 16
    real_digits: int = 3

    def __post_init__(self) -> None:
        n = len(self.family_dims)
        if n < 2:
            raise ValueError("poll: family_dims: a panel needs at least 2 judge families")
        for name in ("family_layers", "family_shares"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"poll: {name} needs one entry per family ({n})")
        if not all(0 < r <= 1 for r in [*self.family_shares, self.big_share]):
            raise ValueError("poll: family_shares and big_share must lie in (0, 1]")
        if not 0 <= self.answer_weight < 1:
            raise ValueError("poll: answer_weight must lie in [0, 1)")
        for name in ("n_items", "n_questions", "concurrency", "base_steps", "steps", "big_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"poll: {name} must be >= 1")
        self.family_models()  # validates sizes and learning rates (errors name the field)

    def family_models(self) -> list:
        from paperlab.papers.poll.miniature import families

        return families(self)


PRESETS = {
    "tiny": dict(
        family_dims=(16, 16, 16),
        family_layers=(1, 1, 1),
        big_dim=16,
        big_layers=1,
        base_steps=20,
        steps=20,
        big_steps=20,
        batch_size=8,
        n_items=12,
        n_questions=4,
    ),
    "default": {},
    "full": dict(base_steps=2000, steps=1500, big_steps=2000, n_items=1000, n_questions=300),
}


# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost)
MIN_JUDGE_KAPPA = 0.4  # kappa: any single judge below this does not judge -> inconclusive
KAPPA_TOLERANCE = 0.02  # kappa: the panel below its best member by less -> inconclusive
MIN_SELF_BIAS = 0.05  # bias: single judges' own-family leniency needed to test a reduction
MIN_COST_RATIO = 1.0  # cost: large judge / panel


def judge_kappa(m: Mapping[str, float]) -> tuple[Verdict, str]:
    weakest, best, gain = (
        float(m["kappa_weakest_judge"]),
        float(m["kappa_best_single"]),
        float(m["kappa_gain"]),
    )
    if math.isnan(weakest) or weakest < MIN_JUDGE_KAPPA:
        return (
            "inconclusive",
            f"a judge does not judge (weakest judge kappa {weakest:.2f} < {MIN_JUDGE_KAPPA})",
        )
    if gain >= 0:
        return "holds", f"panel kappa {m['kappa_panel']:.3f} >= best single judge {best:.3f}"
    if gain > -KAPPA_TOLERANCE:
        return (
            "inconclusive",
            f"panel kappa below the best single judge by {-gain:.3f} (< {KAPPA_TOLERANCE})",
        )
    return "fails", f"panel kappa {m['kappa_panel']:.3f} < best single judge {best:.3f}"


def judge_bias(m: Mapping[str, float]) -> tuple[Verdict, str]:
    single, reduction = float(m["single_bias"]), float(m["bias_reduction"])
    if math.isnan(single) or single < MIN_SELF_BIAS:
        return "inconclusive", f"single judges show no self-preference to reduce ({single:.3f})"
    if reduction > 0:
        return "holds", f"bias {single:.3f} (single) -> {m['panel_bias']:.3f} (panel)"
    return "fails", f"bias {single:.3f} (single) -> {m['panel_bias']:.3f} (panel): not smaller"


PAPER = PaperClaims(
    config=PoLLClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="kappa",
            statement="a panel of small judges agrees with the labels at least as well as every "
            "single judge, the large one included",
            paper_figure="PoLL kappa above every single judge, GPT-4 included (Sec. 4.1)",
            criterion=custom(
                f"kappa_gain (panel - best single judge) >= 0 (within {KAPPA_TOLERANCE}: "
                f"inconclusive), with judges that judge (every judge kappa >= {MIN_JUDGE_KAPPA})",
                judge_kappa,
            ),
            run=experiments.run_kappa,
            ours="panel {kappa_panel:.2f} vs best single {kappa_best_single:.2f} "
            "({best_judge}), big judge {kappa_big:.2f}, weakest {kappa_weakest_judge:.2f}",
        ),
        Claim(
            id="bias",
            statement="a judge's leniency toward its own family's mistakes shrinks in the panel",
            paper_figure="less intra-model bias than single judges (Sec. 4.3)",
            criterion=custom(
                f"single-judge bias >= {MIN_SELF_BIAS} and the panel's is smaller", judge_bias
            ),
            run=experiments.run_bias,
            ours="own-family leniency {single_bias:.2f} (single) -> {panel_bias:.2f} (panel)",
        ),
        Claim(
            id="cost",
            statement="the panel costs less than one large judge",
            paper_figure="over 7x cheaper than GPT-4 (Sec. 4.4)",
            criterion=at_least("cost_ratio", MIN_COST_RATIO),
            run=experiments.run_cost,
            ours="large judge / panel cost = {cost_ratio:.1f}x",
        ),
    ],
)
