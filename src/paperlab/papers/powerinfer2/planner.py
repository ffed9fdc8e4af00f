"""Offline planner: which neurons to pin in memory, from the activation profile.

PowerInfer (arXiv 2312.12456, Sec. 6.2-6.4) places neurons with an integer linear program:
binary a_i per neuron, maximise the *impact* sum_i a_i * v_i (v_i = profiled activation
frequency) subject to the fast memory's capacity sum_i a_i * M_i <= C (plus a per-layer minimum
that pays for GPU-CPU synchronisation), solved offline over batches of 256 neurons with GLPK.
PowerInfer-2 (arXiv 2406.06282, Sec. 4.2) splits its in-memory neuron cache into a hot region,
filled offline with the most frequently activated neurons and never evicted, and a cold region
managed by LRU at run time; its offline planner (Sec. 5, an SMT solver over a cost model of
CPU, I/O and memory) picks the sizes.

Here every neuron's bundle (gate row, up row, down column) has the same size, so the program
is a 0/1 knapsack with equal weights, and the greedy top-k over all layers is optimal:

    Exchange argument. Let K = floor(capacity / bundle_bytes), G the K neurons of largest
    frequency (ties broken by (layer, id)), O any feasible set (|O| <= K). All v_i >= 0, so
    padding O to min(K, n) neurons never lowers its impact. While O != G, take o in O \\ G and
    g in G \\ O: g is in the top K and o is not, so v_g >= v_o; O - {o} + {g} is feasible,
    has impact >= O's and one more element of G. After at most K swaps O = G, hence
    impact(G) >= impact(O) for every feasible O: G is optimal.

Frequencies of different layers are comparable (all layers see the same profiled tokens), so
one ranking over all layers maximises the summed covered frequency, and the hot segment goes
where the activations are: a dense layer gets more pinned neurons than a sparse one.
Neurons never seen active are not pinned (they add no impact); their share of the hot budget
goes to the cold LRU segment instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from paperlab.papers.powerinfer2.profile import ActivationProfile


@dataclass
class Plan:
    hot: list[torch.Tensor]  # per layer: sorted unique int64 neuron ids pinned in memory
    hot_bytes: int  # bytes of the hot bundles
    cold_cache_bytes: int  # rest of the budget, for the LRU cold segment
    covered: list[float]  # per layer: share of profiled activations that hit hot neurons

    @property
    def n_hot(self) -> int:
        return sum(len(h) for h in self.hot)

    def to_json(self) -> dict:
        return {
            "hot": [h.tolist() for h in self.hot],
            "hot_bytes": self.hot_bytes,
            "cold_cache_bytes": self.cold_cache_bytes,
            "covered": list(self.covered),
        }

    @classmethod
    def from_json(cls, d: dict) -> Plan:
        """Inverse of `to_json`; a malformed dict -> ValueError (one line)."""
        try:
            hot = [torch.tensor(ids, dtype=torch.int64).reshape(-1) for ids in d["hot"]]
            plan = cls(
                hot=hot,
                hot_bytes=int(d["hot_bytes"]),
                cold_cache_bytes=int(d["cold_cache_bytes"]),
                covered=[float(c) for c in d["covered"]],
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"Plan.from_json: malformed plan ({e!r})") from None
        unsorted = any(len(h) and not bool((h[1:] > h[:-1]).all()) for h in plan.hot)
        negative = min(plan.hot_bytes, plan.cold_cache_bytes) < 0
        if unsorted or negative or len(plan.covered) != len(plan.hot):
            raise ValueError(
                "Plan.from_json: hot ids must be sorted and unique, one covered "
                "share per layer, byte counts >= 0"
            )
        return plan


def _check(budget_bytes: int, bundle_bytes: int, hot_share: float) -> None:
    if not isinstance(budget_bytes, int) or budget_bytes <= 0:
        raise ValueError(f"plan_hot_neurons: budget_bytes={budget_bytes!r} must be an int > 0")
    if not isinstance(bundle_bytes, int) or bundle_bytes <= 0:
        raise ValueError(f"plan_hot_neurons: bundle_bytes={bundle_bytes!r} must be an int > 0")
    if not 0.0 <= hot_share <= 1.0:
        raise ValueError(f"plan_hot_neurons: hot_share={hot_share} must be in [0, 1]")


def plan_hot_neurons(
    profile: ActivationProfile, *, budget_bytes: int, bundle_bytes: int, hot_share: float = 0.5
) -> Plan:
    """Pin the neurons of largest activation frequency, over all layers, into `hot_share` of
    `budget_bytes` (whole bundles of `bundle_bytes` each); the rest is the cold LRU segment.

    Optimal for "maximise covered activation frequency under capacity" (see module docstring).
    """
    _check(budget_bytes, bundle_bytes, hot_share)
    # DEVIATION: hot_share is a parameter, not planned by PowerInfer-2's SMT cost model (Sec. 5)
    capacity = int(hot_share * budget_bytes) // bundle_bytes  # bundles that fit
    counts = torch.cat(profile.counts)  # (sum of widths,) in (layer, id) order
    layer_of = torch.cat([torch.full_like(c, l) for l, c in enumerate(profile.counts)])
    offsets = torch.tensor([0] + [len(c) for c in profile.counts]).cumsum(0)
    order = torch.sort(counts, descending=True, stable=True).indices  # ties: (layer, id) order
    chosen = order[: min(capacity, int((counts > 0).sum()))]  # top-k with impact > 0
    hot = []
    for l in range(profile.n_layers):
        ids = chosen[layer_of[chosen] == l] - offsets[l]
        hot.append(torch.sort(ids).values)
    hot_bytes = len(chosen) * bundle_bytes
    return Plan(
        hot=hot,
        hot_bytes=hot_bytes,
        cold_cache_bytes=budget_bytes - hot_bytes,
        covered=covered_share(profile, hot),
    )


def covered_share(profile: ActivationProfile, hot: list[torch.Tensor]) -> list[float]:
    """Per layer: share of the profiled activations that fall on the `hot` neurons (1.0 for a
    layer that never fired: nothing is missed)."""
    shares = []
    for counts, ids in zip(profile.counts, hot, strict=True):
        total = int(counts.sum())
        shares.append(int(counts[ids].sum()) / total if total else 1.0)
    return shares


def hot_first_order(profile: ActivationProfile) -> list[torch.Tensor]:
    """Per layer: neuron ids by descending activation frequency (ties by id): the on-disk order,
    so hot neurons sit together at the start of each layer and cold reads are short."""
    return [torch.sort(c, descending=True, stable=True).indices for c in profile.counts]
