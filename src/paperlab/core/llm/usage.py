"""Token and cost accounting per model, for one client (one run)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class ModelUsage:
    calls: int = 0  # requests that reached the endpoint
    cached: int = 0  # answered from the cache (no tokens billed)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # USD from the config's price table, fresh calls only
    seconds: float = 0.0  # summed request latency


class UsageTracker:
    def __init__(self) -> None:
        self.models: dict[str, ModelUsage] = {}

    def record(
        self,
        model: str,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        cost: float,
        seconds: float,
        cached: bool,
    ) -> None:
        u = self.models.setdefault(model, ModelUsage())
        if cached:
            u.cached += 1
            return
        u.calls += 1
        u.prompt_tokens += prompt_tokens
        u.completion_tokens += completion_tokens
        u.cost += cost
        u.seconds += seconds

    @property
    def total(self) -> ModelUsage:
        t = ModelUsage()
        for u in self.models.values():
            for k, v in asdict(u).items():
                setattr(t, k, getattr(t, k) + v)
        return t

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {name: asdict(u) for name, u in {**self.models, "total": self.total}.items()}

    def table(self) -> str:
        rows = [("model", "calls", "cached", "prompt tok", "completion tok", "cost $")]
        for name, u in {**self.models, "total": self.total}.items():
            rows.append(
                (
                    name,
                    str(u.calls),
                    str(u.cached),
                    str(u.prompt_tokens),
                    str(u.completion_tokens),
                    f"{u.cost:.4f}",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows
        )
