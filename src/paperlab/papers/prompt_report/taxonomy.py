"""The Prompt Report's taxonomy as data (Sec. 2.2, Figure 2.2; vocabulary: Figure 1.3).

`taxonomy.toml` (package data) holds the 58 text-based techniques, each with its group, a
one-line definition in our words and the paper that proposed it, and the 33 vocabulary terms.

    tax = load_taxonomy()
    tax.counts()                       # {"zero_shot": 8, "few_shot": 10, ...}
    tax.get("Self-Consistency").source
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass
from importlib import resources

# Sec. 2.2: "58 text-based prompting techniques, broken into 6 major categories"; the counts
# per group follow Figure 2.2 (+ Sec. 2.2.1.2's three undrawn few-shot techniques)
PAPER_TECHNIQUES = 58
PAPER_VOCABULARY = 33
PAPER_GROUP_COUNTS = {
    "zero_shot": 8,
    "few_shot": 10,
    "thought_generation": 15,
    "ensembling": 10,
    "self_criticism": 6,
    "decomposition": 9,
}


@dataclass(frozen=True)
class TechniqueInfo:
    name: str
    group: str  # a key of Taxonomy.groups
    definition: str
    source: str
    parent: str = ""  # the node it hangs under in Figure 2.2 (below its group)
    in_figure: bool = True


@dataclass(frozen=True)
class Term:
    name: str
    definition: str
    parent: str = ""


@dataclass(frozen=True)
class Taxonomy:
    groups: dict[str, str]  # key -> display name, in the paper's order
    techniques: tuple[TechniqueInfo, ...]
    vocabulary: tuple[Term, ...]

    def counts(self) -> dict[str, int]:
        """Techniques per group, in the groups' order."""
        c = Counter(t.group for t in self.techniques)
        return {g: c[g] for g in self.groups}

    def in_group(self, group: str) -> list[TechniqueInfo]:
        if group not in self.groups:
            raise ValueError(f"group: unknown {group!r}; choose from {', '.join(self.groups)}")
        return [t for t in self.techniques if t.group == group]

    def get(self, name: str) -> TechniqueInfo:
        """The technique named `name` (case-insensitive)."""
        for t in self.techniques:
            if t.name.lower() == name.lower():
                return t
        raise KeyError(f"no technique named {name!r} in the taxonomy")


def parse_taxonomy(text: str) -> Taxonomy:
    """A `Taxonomy` from TOML text; ValueError naming the entry when one is malformed."""
    data = tomllib.loads(text)
    groups = dict(data.get("groups", {}))
    techniques, vocabulary = [], []
    for i, t in enumerate(data.get("technique", [])):
        missing = [k for k in ("name", "group", "definition", "source") if not t.get(k)]
        if missing:
            raise ValueError(f"technique {i} ({t.get('name', '?')}): missing {', '.join(missing)}")
        if t["group"] not in groups:
            raise ValueError(f"technique {t['name']!r}: unknown group {t['group']!r}")
        techniques.append(TechniqueInfo(**t))
    for i, t in enumerate(data.get("term", [])):
        if not t.get("name") or not t.get("definition"):
            raise ValueError(f"term {i}: needs a name and a definition")
        vocabulary.append(Term(**t))
    names = [t.name for t in techniques]
    if len(set(names)) != len(names):
        raise ValueError("taxonomy: duplicate technique names")
    return Taxonomy(groups, tuple(techniques), tuple(vocabulary))


def load_taxonomy() -> Taxonomy:
    """The taxonomy shipped with the package."""
    text = resources.files("paperlab.papers.prompt_report").joinpath("taxonomy.toml").read_text()
    return parse_taxonomy(text)
