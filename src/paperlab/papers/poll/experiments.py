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
            system, messages, temperature=0.0, max_tokens=world.max_tokens
        )
        return out.text

    return world.client.run(gather_bounded(pairs, answer, concurrency))


def reference_ids(n_pairs: int, items: int) -> list[int]:
    """`items` pairs spread evenly over the `n_pairs` (at most `n_pairs`)."""
    return list(range(0, n_pairs, max(1, n_pairs // max(1, items))))[:items]


def evaluate_world(cfg: Any, world: World, seed: int) -> dict:
    pairs = [(s, q) for s in world.jury for q in world.questions]
    answers = answer_all(world, pairs, cfg.concurrency)
    labels = [q.read(a) == q.answer for (_, q), a in zip(pairs, answers, strict=True)]
    judges = [*world.jury, world.big]
    # seeded: a judge's parse retries sample at temperature >= 0.7; unseeded, the votes (and
    # the kappa, bias and cost figures) changed from run to run on the same models
    panel = PanelOfJudges(world.client, judges, max_tokens=world.max_tokens, seed=seed)

    def judge_all(ids: list[int], *, with_reference: bool) -> list:
        async def judge(i):
            (_, q), a = pairs[i], answers[i]
            reference = q.answer if with_reference else None
            return await panel.judge_qa(q.question, a, reference=reference)

        return world.client.run(gather_bounded(ids, judge, cfg.concurrency))

    before = world.client.usage.to_dict()
    verdicts = judge_all(list(range(len(pairs))), with_reference=False)
    after = world.client.usage.to_dict()
    cost = {j: after[j]["cost"] - before.get(j, {}).get("cost", 0.0) for j in judges}
    ref_ids = reference_ids(len(pairs), cfg.reference_items)
    ref_verdicts = judge_all(ref_ids, with_reference=True)
    return dict(
        world=world,
        pairs=pairs,
        answers=answers,
        labels=labels,
        votes={j: [v.votes[j] for v in verdicts] for j in judges},
        panel=[max_vote([v.votes[j] for j in world.jury]) for v in verdicts],
        cost=cost,
        ref_votes={j: [v.votes[j] for v in ref_verdicts] for j in judges},
        ref_panel=[max_vote([v.votes[j] for j in world.jury]) for v in ref_verdicts],
        ref_labels=[labels[i] for i in ref_ids],
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
    kappas = {j: cohen_kappa(ev["votes"][j], labels) for j in [*world.jury, world.big]}
    panel = cohen_kappa(ev["panel"], labels)
    best = max(world.jury, key=lambda j: kappas[j])
    ref_panel = cohen_kappa(ev["ref_panel"], ev["ref_labels"]) if ev["ref_panel"] else math.nan
    ctx.notes["best_judge"] = best
    plot_kappa(ctx, kappas, panel)
    return {
        **{f"kappa_{j}": k for j, k in kappas.items()},
        "kappa_panel": panel,
        "kappa_best_member": kappas[best],
        "kappa_big": kappas[world.big],
        "kappa_gain": panel - kappas[best],
        "kappa_panel_with_reference": ref_panel,
        "answers_correct": statistics.mean(labels),
    }


def run_bias(ctx: RunContext) -> dict[str, float]:
    ev = evaluate(ctx)
    world, labels = ev["world"], ev["labels"]
    family = [s for s, _ in ev["pairs"]]
    single = [self_preference_bias(ev["votes"][j], labels, family, j) for j in world.jury]
    panel = [self_preference_bias(ev["panel"], labels, family, j) for j in world.jury]
    single_mean, panel_mean = nanmean(single), nanmean(panel)
    return {
        **{f"bias_{j}": b for j, b in zip(world.jury, single, strict=True)},
        "single_bias": single_mean,
        "panel_bias": panel_mean,
        "bias_reduction": single_mean - panel_mean,
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
