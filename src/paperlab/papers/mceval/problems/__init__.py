"""paperlab's own McEval-style problems: one neutral description each (`problems.toml`) and,
per language, a canonical solution, its tests and deliberately wrong variants (`<key>.toml`).

A language file has one table per problem:

    [gcd]
    solution = '''...'''   # defines the function (and any helpers or imports it needs)
    test = '''...'''       # appended after the solution; exits non-zero on the first failure
    wrong = [["b != 0", "b > 1"]]   # (find, replace) edits of the solution; each must fail

Every `find` occurs exactly once in the solution, so a wrong variant is unambiguous.

DEVIATION (data): McEval's 16K samples are not shipped or downloaded; these 20 problems in
14 languages are ours, and McEval's own JSONL files run unchanged with `paperlab mceval run`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from paperlab.claims import UserError


@dataclass(frozen=True)
class Problem:
    id: str
    signature: str
    description: str


@dataclass(frozen=True)
class Solution:
    problem: str
    language: str
    solution: str
    test: str
    wrong: tuple[tuple[str, str], ...]

    def program(self, code: str | None = None) -> str:
        """The source that is run: `code` (default: the canonical solution) and the tests."""
        body = self.solution if code is None else code
        return body.rstrip("\n") + "\n\n" + self.test.lstrip("\n")

    def wrong_variants(self) -> list[str]:
        """The solution with each (find, replace) edit applied."""
        out = []
        for find, replace in self.wrong:
            if self.solution.count(find) != 1:
                raise ValueError(
                    f"{self.language}/{self.problem}: wrong edit {find!r} must occur exactly "
                    f"once in the solution (found {self.solution.count(find)})"
                )
            out.append(self.solution.replace(find, replace))
        return out


def _read(name: str) -> dict:
    path = resources.files(__package__) / name
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"mceval problems: {name}: {e}") from None


@cache
def problems() -> dict[str, Problem]:
    """All problems by id, in file order."""
    return {
        pid: Problem(pid, t["signature"], t["description"])
        for pid, t in _read("problems.toml").items()
    }


def languages_with_problems() -> list[str]:
    """Language keys that have a solutions file."""
    root = resources.files(__package__)
    return sorted(
        p.name.removesuffix(".toml")
        for p in root.iterdir()
        if p.name.endswith(".toml") and p.name != "problems.toml"
    )


@cache
def solutions(language: str) -> dict[str, Solution]:
    """The canonical solutions of one language (key as in `languages.LANGUAGES`), by problem."""
    try:
        table = _read(f"{language}.toml")
    except FileNotFoundError:
        raise UserError(f"mceval: no problems written for language {language!r}") from None
    known = problems()
    out = {}
    for pid, t in table.items():
        if pid not in known:
            raise UserError(f"mceval problems: {language}.toml: unknown problem {pid!r}")
        wrong = tuple((str(f), str(r)) for f, r in t.get("wrong", []))
        out[pid] = Solution(pid, language, t["solution"], t["test"], wrong)
    return out
