"""PoLL's experiments: the families answer every question and every judge judges every answer,
once per run (shared by the claims through the run's artifact cache); then one function per
claim (`run_<claim>(ctx) -> figures`). The world (judges and the systems they judge) comes from
`world.py`; agreement statistics from `paperlab.core.stats`."""

from __future__ import annotations

import math
import statistics
from typing import Any

from paperlab.claims import RunContext
from paperlab.core.llm.results import gather_bounded
from paperlab.core.stats import cohen_kappa
from paperlab.papers.poll.poll import PanelOfJudges, max_vote, self_preference_bias
from paperlab.papers.poll.world import World, get_world


def evaluate(ctx: RunContext) -> dict:
    """Families answer every question; every judge judges every answer (shared by claims)."""
    return ctx.shared("evaluation", lambda: evaluate_world(ctx.config, get_world(ctx), ctx.seed))


def answer_all(world: World, pairs: list, concurrency: int) -> list[str]:
    """Each (system, question) pair's greedy answer."""

    async def answer(pair):
        system, q = pair
        messages = [{"role": "user", "content": q.question}]
        out = await world.client.chat(
            system, messages, temperature=0.0, max_tokens=world.answer_tokens
        )
        return out.text

    return world.client.run(gather_bounded(pairs, answer, concurrency))


def evaluate_world(cfg: Any, world: World, seed: int) -> dict:
    """The jury's answers to the world's questions, then the other systems' answers
    (`world.items`), each judged against its reference by every judge."""
    pairs = [(s, q) for s in world.jury for q in world.questions]
    answers = answer_all(world, pairs, cfg.concurrency)
    rows = [
        (s, q.question, a, q.answer, q.read(a) == q.answer)
        for (s, q), a in zip(pairs, answers, strict=True)
    ]
    rows += [
        (it.system, it.instruction, it.response, it.reference, it.correct) for it in world.items
    ]
    labels = [r[4] for r in rows]
    judges = [*world.jury, world.big]
    # seeded: a judge's parse retries sample at temperature >= 0.7; unseeded, the votes (and
    # the kappa, bias and cost figures) changed from run to run on the same models
    panel = PanelOfJudges(world.client, judges, max_tokens=world.max_tokens, seed=seed)

    async def judge(row):
        _, question, answer, reference, _ = row
        return await panel.judge_qa(question, answer, reference=reference)

    before = world.client.usage.to_dict()
    verdicts = world.client.run(gather_bounded(rows, judge, cfg.concurrency))
    after = world.client.usage.to_dict()
    cost = {j: after[j]["cost"] - before.get(j, {}).get("cost", 0.0) for j in judges}
    return dict(
        world=world,
        systems=[r[0] for r in rows],
        labels=labels,
        n_family=len(pairs),  # the first rows: the jury's own answers
        votes={j: [v.votes[j] for v in verdicts] for j in judges},
        panel=[max_vote([v.votes[j] for j in world.jury]) for v in verdicts],
        cost=cost,
    )


def nanmean(xs: list[float]) -> float:
    kept = [x for x in xs if not math.isnan(x)]
    return statistics.mean(kept) if kept else math.nan


def plot_kappa(ctx: RunContext, kappas: dict[str, float], panel: float) -> None:
    names = [*kappas, "panel"]
    values = [*kappas.values(), panel]
    fig, ax = ctx.figure(figsize=(5, 3))
    ax.bar(names, values, color=["#999"] * (len(names) - 2) + ["#c96", "#36c"])
    ax.set_ylabel("Cohen's kappa vs labels")
    ax.set_title("single judges vs the panel (max vote)")
    ctx.save_figure(fig, "kappa.png")


# ---------------------------------------------------------------------------------------------
# Claims


def run_kappa(ctx: RunContext) -> dict[str, float]:
    ev = evaluate(ctx)
    world, labels = ev["world"], ev["labels"]
    judges = [*world.jury, world.big]
    kappas = {j: cohen_kappa(ev["votes"][j], labels) for j in judges}
    panel = cohen_kappa(ev["panel"], labels)
    best = max(judges, key=lambda j: kappas[j])
    weakest = min(judges, key=lambda j: kappas[j])
    ctx.notes["best_judge"] = best
    ctx.notes["weakest_judge"] = weakest
    plot_kappa(ctx, kappas, panel)
    n = ev["n_family"]
    return {
        **{f"kappa_{j}": k for j, k in kappas.items()},
        "kappa_panel": panel,
        "kappa_best_single": kappas[best],
        "kappa_best_member": max(kappas[j] for j in world.jury),
        "kappa_big": kappas[world.big],
        "kappa_weakest_judge": kappas[weakest],
        "kappa_gain": panel - kappas[best],
        "answers_correct": statistics.mean(labels),
        "family_answers_correct": statistics.mean(labels[:n]) if n else math.nan,
        "items_judged": float(len(labels)),
    }


def run_bias(ctx: RunContext) -> dict[str, float]:
    """Own-family leniency on the jury's own answers (the first `n_family` rows)."""
    ev = evaluate(ctx)
    world, n = ev["world"], ev["n_family"]
    labels, family = ev["labels"][:n], ev["systems"][:n]
    single = [self_preference_bias(ev["votes"][j][:n], labels, family, j) for j in world.jury]
    panel = [self_preference_bias(ev["panel"][:n], labels, family, j) for j in world.jury]
    single_mean, panel_mean = nanmean(single), nanmean(panel)
    return {
        **{f"bias_{j}": b for j, b in zip(world.jury, single, strict=True)},
        "single_bias": single_mean,
        "panel_bias": panel_mean,
        "bias_reduction": single_mean - panel_mean,
        "family_wrong_answers": float(n - sum(labels)),
    }


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
