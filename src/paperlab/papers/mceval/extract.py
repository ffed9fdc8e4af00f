"""Code extraction from a model's answer, and the unbiased pass@k estimator.

McEval (Sec. 4) runs the code a model *answers with*, so extraction decides what is judged:
- a fenced block tagged with the language (or one of its aliases) wins; several are joined,
  since models split a solution into blocks ("the helper", "the function");
- else the untagged fenced blocks, joined;
- else, if the answer has fenced blocks of other languages only, nothing (a Python answer to
  a Rust task is not Rust);
- else the whole answer, when it has no fences at all (completion models answer bare code).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from paperlab.papers.mceval.languages import LanguageSpec

# an opening fence of 3+ backticks or tildes, its info string, the body, the same fence
_FENCE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


def fenced_blocks(answer: str) -> list[tuple[str, str]]:
    """(tag, body) of every fenced block, in order; the tag is the info string's first word,
    lower case ("" when untagged)."""
    out = []
    for m in _FENCE.finditer(answer):
        info = m.group("info").strip().split()
        out.append((info[0].lower() if info else "", m.group("body")))
    return out


def extract_code(answer: str, spec: LanguageSpec) -> str:
    """The code in `answer` for the language `spec` ("" when there is none; see module doc)."""
    blocks = fenced_blocks(answer)
    if not blocks:
        return answer.strip("\n") + "\n" if answer.strip() else ""
    tags = set(spec.tags)
    tagged = [body for tag, body in blocks if tag in tags]
    if tagged:
        return "\n".join(tagged)
    untagged = [body for tag, body in blocks if not tag]
    return "\n".join(untagged)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass (Chen et al. 2021, Eq. 1; McEval Sec. 4):
    1 - C(n - c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass_at_k: need 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass_at_k: k={k} exceeds the {n} samples")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(results: Sequence[tuple[int, int]], k: int) -> float:
    """The mean pass@k over problems given as (n, c) pairs."""
    if not results:
        raise ValueError("mean_pass_at_k: no results")
    return sum(pass_at_k(n, c, k) for n, c in results) / len(results)
