"""The judge of claim 5 (lossless sampling), kept out of claims.py so that it stays a
declaration; its significance level is the constant ``claims.ALPHA``."""

from __future__ import annotations

from collections.abc import Mapping


def judge_lossless(m: Mapping[str, float], *, alpha: float) -> tuple[str, str]:
    """Holds when the test finds no difference for Kangaroo and detects the draft alone."""
    if m["p_draft_vs_plain"] >= alpha:
        return "inconclusive", (
            f"the test cannot tell the draft alone from the target at n={m['samples']:.0f} "
            f"(p={m['p_draft_vs_plain']:.3g}): no power"
        )
    if m["p_kangaroo_vs_plain"] < alpha:
        return (
            "fails",
            f"Kangaroo sampling differs from plain sampling (p={m['p_kangaroo_vs_plain']:.3g})",
        )
    return "holds", (
        f"no detectable difference (p={m['p_kangaroo_vs_plain']:.3g} >= {alpha:g}) while the "
        f"same test detects draft-only sampling (p={m['p_draft_vs_plain']:.2g})"
    )
