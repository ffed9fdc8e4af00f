"""Functional tokens, the router's call format and its parser (the paper's methodology).

The router answers a query with one call: a functional token naming a node of the graph, the
reformulated query as its one argument, and an end token:

    <nexa_4>('Determine the derivative of f(x) = x^3 at x = 2.')<nexa_end>

`parse_call` reads such an output robustly: apostrophes and quotes inside the argument
(`what's`), double quotes, escaped quotes, whitespace or newlines around the parts, a missing
`<nexa_end>` or closing quote at the end of the text (a generation cut short). When no
functional token is there it returns `None`, and the caller takes the documented fallback
(the graph's fallback node, the raw query).
(The official parser, `[^']*` between single quotes, drops any query holding an apostrophe and
raises an IndexError on no match.)

`FunctionalTokenizer` adds the functional tokens to the byte tokenizer as special tokens: one
id each, above the bytes and BOS/EOS/PAD, so the routing decision is one generated token.
`add_functional_tokens` does the same to a Hugging Face tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from paperlab.core.data.text import ByteTokenizer

END_TOKEN = "<nexa_end>"

# The official router prompt (the system turn Octopus v4 was fine-tuned with; main.py of the
# official repo wraps it in Phi-3's <|system|> ... <|end|> turn).
ROUTER_SYSTEM_PROMPT = (
    "You are a router. Below is the query from the users, please call the correct function "
    "and generate the parameters to call the function."
)


@dataclass(frozen=True)
class Domain:
    """One row of a functional-token table: the token's index, its domain and worker."""

    index: int
    domain: str
    function: str  # the worker's function name in the router's training data
    description: str


# The official 17-domain MMLU mapping <nexa_0> ... <nexa_16> (utils.py of the official repo);
# the descriptions are ours, summarising which MMLU subjects each worker covers.
MMLU_DOMAINS: tuple[Domain, ...] = tuple(
    Domain(i, name, f"{name}_gpt", text)
    for i, (name, text) in enumerate(
        [
            ("physics", "physics: conceptual, college and high-school physics, astronomy"),
            ("chemistry", "chemistry: high-school and college chemistry"),
            ("biology", "biology: high-school and college biology, anatomy"),
            ("computer_science", "computer science, computer security, machine learning"),
            ("math", "mathematics: algebra, elementary to college maths, statistics"),
            ("electrical_engineering", "electrical engineering"),
            ("history", "history: European, US and world history, prehistory"),
            ("philosophy", "philosophy: logic, fallacies, moral questions, world religions"),
            ("law", "law: international law, jurisprudence, professional law"),
            ("politics", "politics: government, security studies, US foreign policy"),
            ("culture", "culture: human sexuality, sociology"),
            ("economics", "economics: econometrics, macro- and microeconomics"),
            ("geography", "geography"),
            ("psychology", "psychology: high-school and professional psychology, aging"),
            ("business", "business: ethics, management, marketing"),
            ("health", "health: anatomy, clinical knowledge, medicine, nutrition, virology"),
            ("general", "anything outside the other domains"),
        ]
    )
)


def functional_token(index: int) -> str:
    """`<nexa_{index}>`."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"functional token index must be an integer >= 0, got {index!r}")
    return f"<nexa_{index}>"


def format_call(index: int, query: str) -> str:
    """The router's output for a call of node `index` with `query`: the official format,
    single quotes, nothing escaped (the parser reads apostrophes inside)."""
    return f"{functional_token(index)}('{query}'){END_TOKEN}"


@dataclass(frozen=True)
class Call:
    """A parsed router output: the functional token's index and the reformulated query."""

    index: int
    query: str

    @property
    def token(self) -> str:
        return functional_token(self.index)


_TOKEN = re.compile(r"<nexa_(\d{1,4})>")
_END = re.compile(r"<\s*nexa_end\s*>")
_QUOTED = re.compile(r"^\(\s*(?P<q>'''|\"\"\"|['\"])(?P<arg>.*)(?P=q)\s*\)?$", re.S)
_BARE = re.compile(r"^\(\s*(?P<arg>.*?)\s*\)$", re.S)
_OPEN = re.compile(r"^\(\s*(?:'''|\"\"\"|['\"])?(?P<arg>.*)$", re.S)  # cut short: unclosed


def parse_call(text: str) -> Call | None:
    """The first call in a router's output, or None when it holds no functional token.

    Accepted: `<nexa_k>('q')<nexa_end>`; `"q"` or `'''q'''` quotes; quotes and apostrophes
    inside `q`; `\\'` escapes; whitespace and newlines between the parts; no `<nexa_end>` (a
    generation cut short); `(q)` without quotes; and a token followed by plain text. An empty
    argument gives `query=""` (callers fall back to the user's query)."""
    if not isinstance(text, str):
        raise TypeError(f"parse_call: text must be a str, got {type(text).__name__}")
    m = _TOKEN.search(text)
    if m is None:
        return None
    rest = text[m.end() :]
    end = _END.search(rest)
    body = (rest[: end.start()] if end else rest).strip()
    q = _QUOTED.match(body)
    if q:
        arg = q["arg"]
        if len(q["q"]) == 1:
            arg = arg.replace("\\" + q["q"], q["q"])
    else:
        bare = _BARE.match(body) or _OPEN.match(body)
        arg = bare["arg"] if bare else body
    return Call(int(m[1]), arg.strip())


class FunctionalTokenizer:
    """The byte tokenizer (bytes 0..255, BOS 256, EOS 257, PAD 258) with `n_functional`
    functional tokens `<nexa_0>` ... at ids 259.. and `<nexa_end>` after them: each is one
    special token, as the paper adds them to its router's tokenizer."""

    def __init__(self, n_functional: int):
        if isinstance(n_functional, bool) or not isinstance(n_functional, int):
            raise ValueError(f"n_functional must be an integer, got {n_functional!r}")
        if n_functional < 1:
            raise ValueError(f"n_functional must be >= 1, got {n_functional}")
        self.bytes = ByteTokenizer(special_tokens=True)
        self.bos_id, self.eos_id, self.pad_id = self.bytes.bos_id, self.bytes.eos_id, 258
        self.n_functional = n_functional
        self.first_id = self.bytes.vocab_size  # <nexa_0>
        self.end_id = self.first_id + n_functional  # <nexa_end>
        self.vocab_size = self.end_id + 1
        self.special = {functional_token(i): self.first_id + i for i in range(n_functional)}
        self.special[END_TOKEN] = self.end_id
        self._split = re.compile("(" + "|".join(map(re.escape, self.special)) + ")")

    def token_id(self, index: int) -> int:
        """The id of `<nexa_{index}>`."""
        if not 0 <= index < self.n_functional:
            raise ValueError(f"functional token {index} outside 0..{self.n_functional - 1}")
        return self.first_id + index

    def index_of(self, token_id: int) -> int | None:
        """The functional index of an id (None for bytes, BOS/EOS/PAD and `<nexa_end>`)."""
        k = token_id - self.first_id
        return k if 0 <= k < self.n_functional else None

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        ids = [self.bos_id] if bos else []
        for part in self._split.split(text):
            if part in self.special:
                ids.append(self.special[part])
            elif part:
                ids += self.bytes.encode(part)
        return ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text; functional tokens become their strings, BOS/EOS/PAD are dropped."""
        names = {v: k for k, v in self.special.items()}
        out, run = [], []
        for t in ids:
            t = int(t)
            if t < 256:
                run.append(t)
                continue
            out.append(bytes(run).decode("utf-8", errors="replace"))
            run = []
            out.append(names.get(t, ""))
        out.append(bytes(run).decode("utf-8", errors="replace"))
        return "".join(out)


def add_functional_tokens(tokenizer: Any, n_functional: int) -> list[int]:
    """Add `<nexa_0>` ... `<nexa_{n-1}>` and `<nexa_end>` to a Hugging Face tokenizer as
    special tokens (each then encodes as one id); returns their ids in that order. Resize the
    model's embeddings to `len(tokenizer)` afterwards."""
    if n_functional < 1:
        raise ValueError(f"n_functional must be >= 1, got {n_functional}")
    tokens = [functional_token(i) for i in range(n_functional)] + [END_TOKEN]
    tokenizer.add_special_tokens({"additional_special_tokens": tokens})
    return tokenizer.convert_tokens_to_ids(tokens)
