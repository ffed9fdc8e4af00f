"""The miniature's task family and its models: parsing, answers, the SFT encoding."""

from __future__ import annotations

import random

import torch

from paperlab.core.llm.tiny import IGNORE, TOKENIZER
from paperlab.papers.magpie import tasks
from paperlab.papers.magpie.miniature import ModelConfig, encode_pair, finetune, new_model, sft_loss


def test_every_phrasing_parses_back():
    rng = random.Random(0)
    for name in tasks.TASKS:
        for _ in range(20):
            inst, parsed = tasks.sample_instruction(rng, name)
            p = tasks.parse(inst)
            assert p is not None and p.task == name and p.exact and p.in_domain
            assert p.answer == parsed.answer is not None


def test_relaxed_and_out_of_domain():
    p = tasks.parse("what is 3+4")
    assert p.task == "add" and not p.exact and p.answer == "7"
    assert not tasks.parse("Tell me the code of qqqqq.").in_domain
    assert tasks.parse("Tell me the code of qqqqq.").answer is None
    assert tasks.parse("Hello there") is None


def test_held_out_set_is_balanced_and_seeded():
    held = tasks.held_out_set(50, seed=3)
    assert held == tasks.held_out_set(50, seed=3) != tasks.held_out_set(50, seed=4)
    counts = {name: 0 for name in tasks.TASKS}
    for inst, answer in held:
        counts[tasks.parse(inst).task] += 1
        assert tasks.is_correct(f" {answer}", answer)
    assert set(counts.values()) == {10}


def test_encode_pair_masks_the_prompt_unless_user_loss():
    ids, targets = encode_pair("Add 3 and 4.", "7", user_loss=False)
    assert ids[0] == TOKENIZER.bos_id and TOKENIZER.decode(ids[-2:-1]) == "7"
    assert targets[:-2] == [IGNORE] * (len(ids) - 2) and targets[-2:] == ids[-2:]
    _, full = encode_pair("Add 3 and 4.", "7", user_loss=True)
    assert full[0] == IGNORE and full[1:] == ids[1:]


def test_finetune_learns_and_leaves_the_base_alone():
    cfg = ModelConfig(dim=32, n_layers=1, n_heads=2, batch_size=8, finetune_steps=40, lr=1e-2)
    base = new_model(cfg, 0)
    before = [p.clone() for p in base.parameters()]
    batch = [encode_pair("Add 3 and 4.", "7", user_loss=False)] * 2
    ids = torch.tensor([b[0] for b in batch])
    tg = torch.tensor([b[1] for b in batch])
    tuned = finetune(base, [("Add 3 and 4.", "7")], cfg, seed=0)
    assert float(sft_loss(tuned, (ids, tg))) < float(sft_loss(base, (ids, tg)))
    assert all(torch.equal(a, b) for a, b in zip(before, base.parameters(), strict=True))
