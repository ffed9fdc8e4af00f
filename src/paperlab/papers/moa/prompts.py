"""How Mixture-of-Agents hands one layer's answers to the next (Wang et al. 2024, Sec. 2.2).

Every model after the first layer gets the previous layer's responses as numbered references in
its system message, under an instruction to aggregate and synthesise them (critically, not by
copying). The wording below is ours; the paper's Table 1 gives the idea.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

AGGREGATE_INSTRUCTION = (
    "Below are responses from several models to the user's latest question. Evaluate them "
    "critically: some may be wrong. Do not copy any one of them; synthesise them into one "
    "accurate, refined answer."
)


def with_references(
    messages: Sequence[Mapping[str, str]],
    references: Sequence[str],
    *,
    instruction: str = AGGREGATE_INSTRUCTION,
) -> list[dict[str, str]]:
    """The conversation with `references` injected into its system message (added if absent;
    an existing system message is kept after the references)."""
    msgs = [dict(m) for m in messages]
    if not references:
        return msgs
    refs = "\n".join(f"{i}. {r.strip()}" for i, r in enumerate(references, 1))
    system = f"{instruction}\nResponses:\n{refs}"
    if msgs and msgs[0].get("role") == "system":
        msgs[0]["content"] = f"{system}\n\n{msgs[0]['content']}"
    else:
        msgs.insert(0, {"role": "system", "content": system})
    return msgs
