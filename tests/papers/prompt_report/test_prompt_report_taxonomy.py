"""The taxonomy as data: the paper's counts (Sec. 2.2, Figure 2.2; Figure 1.3)."""

from __future__ import annotations

import pytest

from paperlab.papers.prompt_report import (
    PAPER_GROUP_COUNTS,
    PAPER_TECHNIQUES,
    PAPER_VOCABULARY,
    load_taxonomy,
    parse_taxonomy,
)


def test_counts_match_the_paper() -> None:
    tax = load_taxonomy()
    assert len(tax.techniques) == PAPER_TECHNIQUES == 58
    assert len(tax.vocabulary) == PAPER_VOCABULARY == 33
    assert list(tax.groups) == list(PAPER_GROUP_COUNTS)
    assert tax.counts() == PAPER_GROUP_COUNTS
    # the three few-shot techniques of Sec. 2.2.1.2 that Figure 2.2 does not draw
    assert sorted(t.name for t in tax.techniques if not t.in_figure) == [
        "Active Example Selection",
        "LENS",
        "UDR",
    ]


def test_entries_are_complete_and_parents_exist() -> None:
    tax = load_taxonomy()
    names = {t.name for t in tax.techniques}
    for t in tax.techniques:
        assert t.definition.endswith(".") and len(t.definition) < 130, t.name
        assert any(ch.isdigit() for ch in t.source), f"{t.name}: source needs a year"
        assert not t.parent or (t.parent in names and tax.get(t.parent).group == t.group)
    terms = {t.name for t in tax.vocabulary}
    assert all(not t.parent or t.parent in terms for t in tax.vocabulary)
    assert tax.get("self-consistency").group == "ensembling"
    with pytest.raises(KeyError):
        tax.get("Telepathy Prompting")


def test_malformed_taxonomy_names_the_entry() -> None:
    base = '[groups]\nzero_shot = "Zero-Shot"\n'
    with pytest.raises(ValueError, match="Role.*definition"):
        parse_taxonomy(base + '[[technique]]\nname = "Role"\ngroup = "zero_shot"\nsource = "x"\n')
    with pytest.raises(ValueError, match="unknown group"):
        parse_taxonomy(
            base + '[[technique]]\nname = "A"\ngroup = "magic"\ndefinition = "d"\nsource = "s"\n'
        )
    with pytest.raises(ValueError, match="group"):
        load_taxonomy().in_group("magic")
