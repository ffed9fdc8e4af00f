"""PoLL's claims in miniature (Verga et al. 2024, arXiv 2404.18796).

(1) kappa: a panel of three small judges (max vote) agrees with the labels at least as well
           as its best member (Sec. 4.1: PoLL kappa above every single judge, GPT-4 included).
(2) bias:  a judge's leniency toward its own family's mistakes shrinks in the panel
           (Sec. 4.3: less intra-model bias).
(3) cost:  the panel costs less than the single large judge (Sec. 4.4: over 7x cheaper).

Miniature: judges are tiny chat models trained here (miniature.py) on made-up facts; the
answers they judge come from the three families; labels are exact. Judges are served by
`paperlab serve` and queried over HTTP with the real client (reference-free judging: with a
reference our tiny judges only compare strings and agree perfectly; that kappa is reported).
Prices come from a table proportional to parameter count (USD per 1K tokens = params / 1e6).
With `--config FILE` naming real judges in a `[poll]` table (`jury`, `big`, `systems`), the
same claims run on real models judging real models' answers to 3-digit multiplications.
The world (trained, disk-cached, served judges) is in world.py, the experiments in
experiments.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from paperlab.claims import Claim, PaperClaims, Verdict, at_least, custom
from paperlab.core.llm.tiny import TinyChatConfig
from paperlab.papers.poll import experiments


@dataclass
class PoLLClaimsConfig:
    n_facts: int = 90
    family_rates: tuple[float, ...] = (0.5, 0.5, 0.5)  # one small judge family each
    big_rate: float = 0.8  # the large judge knows more
    answer_share: float = 0.4
    judge_share: float = 0.45
    reference_share: float = 0.15
    dim: int = 64
    n_layers: int = 2
    big_dim: int = 96
    big_layers: int = 3
    steps: int = 500
    big_steps: int = 600
    batch_size: int = 32
    lr: float = 5e-3
    reference_items: int = 60  # items also judged with the reference (reported)
    concurrency: int = 16
    real_digits: int = 3

    def __post_init__(self) -> None:
        if len(self.family_rates) < 2:
            raise ValueError("poll: a panel needs at least 2 judge families")
        if not all(0 <= r <= 1 for r in [*self.family_rates, self.big_rate]):
            raise ValueError("poll: knowledge rates must lie in [0, 1]")
        if min(self.answer_share, self.judge_share, self.reference_share) < 0:
            raise ValueError("poll: task shares must be >= 0")
        if min(self.n_facts, self.concurrency) < 1 or self.reference_items < 0:
            raise ValueError("poll: n_facts, concurrency >= 1 and reference_items >= 0")
        self.family_model()
        self.big_model()

    def family_model(self) -> TinyChatConfig:
        return TinyChatConfig(
            dim=self.dim,
            n_layers=self.n_layers,
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            max_seq_len=256,
        )

    def big_model(self) -> TinyChatConfig:
        return TinyChatConfig(
            dim=self.big_dim,
            n_layers=self.big_layers,
            steps=self.big_steps,
            batch_size=self.batch_size,
            lr=self.lr,
            max_seq_len=256,
        )


PRESETS = {
    "tiny": dict(
        n_facts=24,
        steps=40,
        big_steps=40,
        dim=32,
        big_dim=32,
        big_layers=2,
        batch_size=16,
        reference_items=10,
    ),
    "default": {},
    "full": dict(n_facts=400, steps=1500, big_steps=2000, reference_items=400),
}


# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost)
MIN_JUDGE_KAPPA = 0.2  # kappa: a best member below this does not judge -> inconclusive
KAPPA_TOLERANCE = 0.02  # kappa: the panel below its best member by less -> inconclusive
MIN_SELF_BIAS = 0.05  # bias: single judges' own-family leniency needed to test a reduction
MIN_COST_RATIO = 1.0  # cost: large judge / panel


def judge_kappa(m: Mapping[str, float]) -> tuple[Verdict, str]:
    best, gain = float(m["kappa_best_member"]), float(m["kappa_gain"])
    if math.isnan(best) or best < MIN_JUDGE_KAPPA:
        return (
            "inconclusive",
            f"the judges do not judge (best member kappa {best:.2f} < {MIN_JUDGE_KAPPA})",
        )
    if gain >= 0:
        return "holds", f"panel kappa {m['kappa_panel']:.3f} >= best member {best:.3f}"
    if gain > -KAPPA_TOLERANCE:
        return (
            "inconclusive",
            f"panel kappa below its best member by {-gain:.3f} (< {KAPPA_TOLERANCE})",
        )
    return "fails", f"panel kappa {m['kappa_panel']:.3f} < best member {best:.3f}"


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
            statement="a panel of small judges agrees with the labels at least as well as its "
            "best member",
            paper_figure="PoLL kappa above every single judge, GPT-4 included (Sec. 4.1)",
            criterion=custom(
                f"kappa_gain >= 0 (within {KAPPA_TOLERANCE}: inconclusive), with judges that "
                f"judge (best member kappa >= {MIN_JUDGE_KAPPA})",
                judge_kappa,
            ),
            run=experiments.run_kappa,
            ours="panel {kappa_panel:.2f} vs best member {kappa_best_member:.2f} "
            "({best_judge}), big judge {kappa_big:.2f}",
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
