"""PoLL's claims in miniature (card `poll` in PAPERS.md; Verga et al. 2024, 2404.18796).

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
"""

from __future__ import annotations

import asyncio
import math
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from paperlab.claims import Claim, PaperClaims, RunContext, SkipClaim, Verdict, at_least, custom
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.results import gather_bounded
from paperlab.core.llm.tiny import TinyChatConfig
from paperlab.papers.poll.metrics import cohen_kappa
from paperlab.papers.poll.poll import PanelOfJudges, max_vote, self_preference_bias


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


@dataclass
class World:
    client: LLMClient
    jury: list[str]  # the panel's judges; each is also a "system" answering questions
    big: str
    questions: list
    max_tokens: int
    server: LocalServer | None = None
    params: dict[str, int] = field(default_factory=dict)


def get_world(ctx: RunContext) -> World:
    build = _real_world if ctx.llm_config else _miniature_world
    return ctx.shared("world", lambda: build(ctx))


def _miniature_world(ctx: RunContext) -> World:
    from paperlab.core.data.facts import make_facts
    from paperlab.core.llm.tiny import load_chat_model
    from paperlab.papers.poll.miniature import train_judges

    cfg: PoLLClaimsConfig = ctx.config
    directory = Path(tempfile.mkdtemp(prefix="paperlab-poll-"))
    dirs = train_judges(cfg, ctx.seed, directory, progress=ctx.progress)
    params = {d.name: load_chat_model(d)[0].num_params() for d in dirs}
    server = LocalServer(dirs).start()
    # DEVIATION: no provider prices exist for models trained here; the table charges in
    # proportion to parameters, as hosted prices roughly do
    prices = {name: (n / 1e6, n / 1e6) for name, n in params.items()}
    client = LLMClient(server.config(prices=prices, max_concurrency=64))
    names = server.model_ids
    return World(
        client,
        names[:-1],
        names[-1],
        make_facts(cfg.n_facts, seed=ctx.seed),
        max_tokens=4,
        server=server,
        params=params,
    )


def _real_world(ctx: RunContext) -> World:
    from paperlab.core.data.arithmetic import sample_problems
    from paperlab.core.llm.config import load_config

    cfg: PoLLClaimsConfig = ctx.config
    config = load_config(ctx.llm_config)
    section = config.section("poll")
    if len(section.get("jury", [])) < 2 or not section.get("big"):
        raise SkipClaim(f"{config.source} has no [poll] table with a jury (>= 2) and big")
    problems = sample_problems(cfg.n_facts, digits=cfg.real_digits, op="*", seed=ctx.seed)
    return World(LLMClient(config), list(section["jury"]), section["big"], problems, max_tokens=512)


def evaluate(ctx: RunContext) -> dict:
    """Families answer every question; every judge judges every answer (shared by claims)."""
    return ctx.shared("evaluation", lambda: _evaluate(ctx))


def _evaluate(ctx: RunContext) -> dict:
    cfg: PoLLClaimsConfig = ctx.config
    world = get_world(ctx)
    client = world.client
    pairs = [(s, q) for s in world.jury for q in world.questions]

    async def answer(pair):
        s, q = pair
        messages = [{"role": "user", "content": q.question}]
        return (await client.chat(s, messages, temperature=0.0, max_tokens=world.max_tokens)).text

    answers = asyncio.run(gather_bounded(pairs, answer, cfg.concurrency))
    labels = [q.read(a) == q.answer for (_, q), a in zip(pairs, answers, strict=True)]
    judges = [*world.jury, world.big]
    panel = PanelOfJudges(client, judges, max_tokens=world.max_tokens)
    before = client.usage.to_dict()

    async def judge(i):
        (_, q), a = pairs[i], answers[i]
        return await panel.judge_qa(q.question, a)

    verdicts = asyncio.run(gather_bounded(range(len(pairs)), judge, cfg.concurrency))
    after = client.usage.to_dict()
    cost = {j: after[j]["cost"] - before.get(j, {}).get("cost", 0.0) for j in judges}
    votes = {j: [v.votes[j] for v in verdicts] for j in judges}

    async def judge_ref(i):
        (_, q), a = pairs[i], answers[i]
        return await panel.judge_qa(q.question, a, reference=q.answer)

    ref_ids = list(range(0, len(pairs), max(1, len(pairs) // max(1, cfg.reference_items))))
    ref_ids = ref_ids[: cfg.reference_items]
    ref_verdicts = asyncio.run(gather_bounded(ref_ids, judge_ref, cfg.concurrency))
    return dict(
        world=world,
        pairs=pairs,
        answers=answers,
        labels=labels,
        votes=votes,
        panel=[max_vote([v.votes[j] for j in world.jury]) for v in verdicts],
        cost=cost,
        ref_votes={j: [v.votes[j] for v in ref_verdicts] for j in judges},
        ref_panel=[max_vote([v.votes[j] for j in world.jury]) for v in ref_verdicts],
        ref_labels=[labels[i] for i in ref_ids],
    )


def run_kappa(ctx: RunContext) -> dict[str, float]:
    ev = evaluate(ctx)
    world, labels = ev["world"], ev["labels"]
    kappas = {j: cohen_kappa(ev["votes"][j], labels) for j in [*world.jury, world.big]}
    panel = cohen_kappa(ev["panel"], labels)
    best = max(world.jury, key=lambda j: kappas[j])
    out = {f"kappa_{j}": k for j, k in kappas.items()}
    ref_panel = cohen_kappa(ev["ref_panel"], ev["ref_labels"]) if ev["ref_panel"] else math.nan
    ctx.notes["best_judge"] = best
    _plot_kappa(ctx, kappas, panel)
    return {
        **out,
        "kappa_panel": panel,
        "kappa_best_member": kappas[best],
        "kappa_big": kappas[world.big],
        "kappa_gain": panel - kappas[best],
        "kappa_panel_with_reference": ref_panel,
        "answers_correct": statistics.mean(labels),
    }


def _plot_kappa(ctx: RunContext, kappas: dict[str, float], panel: float) -> None:
    names = [*kappas, "panel"]
    values = [*kappas.values(), panel]
    fig, ax = ctx.figure(figsize=(5, 3))
    ax.bar(names, values, color=["#999"] * (len(names) - 2) + ["#c96", "#36c"])
    ax.set_ylabel("Cohen's kappa vs labels")
    ax.set_title("single judges vs the panel (max vote)")
    ctx.save_figure(fig, "kappa.png")


def run_bias(ctx: RunContext) -> dict[str, float]:
    ev = evaluate(ctx)
    world, labels = ev["world"], ev["labels"]
    family = [s for s, _ in ev["pairs"]]
    single = [self_preference_bias(ev["votes"][j], labels, family, j) for j in world.jury]
    panel = [self_preference_bias(ev["panel"], labels, family, j) for j in world.jury]
    single_mean, panel_mean = _nanmean(single), _nanmean(panel)
    out = {f"bias_{j}": b for j, b in zip(world.jury, single, strict=True)}
    return {
        **out,
        "single_bias": single_mean,
        "panel_bias": panel_mean,
        "bias_reduction": single_mean - panel_mean,
    }


def _nanmean(xs: list[float]) -> float:
    kept = [x for x in xs if not math.isnan(x)]
    return statistics.mean(kept) if kept else math.nan


def _judge_kappa(m) -> tuple[Verdict, str]:
    best, gain = float(m["kappa_best_member"]), float(m["kappa_gain"])
    if math.isnan(best) or best < 0.2:
        return "inconclusive", f"the judges do not judge (best member kappa {best:.2f} < 0.2)"
    if gain >= 0:
        return "holds", f"panel kappa {m['kappa_panel']:.3f} >= best member {best:.3f}"
    if gain > -0.02:
        return "inconclusive", f"panel kappa below its best member by {-gain:.3f} (< 0.02)"
    return "fails", f"panel kappa {m['kappa_panel']:.3f} < best member {best:.3f}"


def _judge_bias(m) -> tuple[Verdict, str]:
    single, reduction = float(m["single_bias"]), float(m["bias_reduction"])
    if math.isnan(single) or single < 0.05:
        return "inconclusive", f"single judges show no self-preference to reduce ({single:.3f})"
    if reduction > 0:
        return "holds", f"bias {single:.3f} (single) -> {m['panel_bias']:.3f} (panel)"
    return "fails", f"bias {single:.3f} (single) -> {m['panel_bias']:.3f} (panel): not smaller"


def run_cost(ctx: RunContext) -> dict[str, float]:
    ev = evaluate(ctx)
    world = ev["world"]
    panel = sum(ev["cost"][j] for j in world.jury)
    big = ev["cost"][world.big]
    return {
        "panel_cost": panel,
        "big_cost": big,
        "cost_ratio": big / panel if panel > 0 else math.nan,
    }


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
                "kappa_gain >= 0 (within 0.02: inconclusive), with judges that judge "
                "(best member kappa >= 0.2)",
                _judge_kappa,
            ),
            run=run_kappa,
            ours="panel {kappa_panel:.2f} vs best member {kappa_best_member:.2f} "
            "({best_judge}), big judge {kappa_big:.2f}",
        ),
        Claim(
            id="bias",
            statement="a judge's leniency toward its own family's mistakes shrinks in the panel",
            paper_figure="less intra-model bias than single judges (Sec. 4.3)",
            criterion=custom("single-judge bias >= 0.05 and the panel's is smaller", _judge_bias),
            run=run_bias,
            ours="own-family leniency {single_bias:.2f} (single) -> {panel_bias:.2f} (panel)",
        ),
        Claim(
            id="cost",
            statement="the panel costs less than one large judge",
            paper_figure="over 7x cheaper than GPT-4 (Sec. 4.4)",
            criterion=at_least("cost_ratio", 1.0),
            run=run_cost,
            ours="large judge / panel cost = {cost_ratio:.1f}x",
        ),
    ],
)
