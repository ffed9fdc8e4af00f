"""The routers: the functional-token router's training, decoding, save/load; MiniLM centroids;
and the miniature's world (exact answers, a generalist of the workers' total size)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from paperlab.core.llama import Llama
from paperlab.papers.octopus_v4 import (
    CentroidRouter,
    FunctionalTokenRouter,
    MiniLM,
    RouterTrainConfig,
    train_functional_router,
)
from paperlab.papers.octopus_v4.miniature import (
    CANONICAL,
    DOMAIN_NAMES,
    INDEX,
    generalist_dim,
    generalist_steps,
    held_out_queries,
    make_world,
    route_example,
)


def _example(rng: random.Random):
    k = rng.choice([1, 4])
    word = rng.choice(["ab", "cd"])
    return f"{'chem' if k == 1 else 'math'} {word}", k, f"Q {word}"


@pytest.fixture(scope="module")
def router():
    cfg = RouterTrainConfig(dim=32, n_layers=2, n_heads=2, steps=150, batch_size=16, lr=1e-2)
    return train_functional_router(_example, 17, cfg, seed=0)


def test_the_trained_router_writes_calls_and_decides_in_one_token(router):
    routes = router.route_many(["chem ab", "math cd", "math ab"])
    assert [r.index for r in routes] == [1, 4, 4]
    assert [r.query for r in routes] == ["Q ab", "Q cd", "Q ab"]
    assert all(r.decision_tokens == 1 and r.output.endswith("<nexa_end>") for r in routes)
    assert routes[0].prompt_tokens == len(router.prompt_ids("chem ab"))


def test_router_save_load_round_trip(router, tmp_path):
    router.save(tmp_path / "r")
    again = FunctionalTokenRouter.load(tmp_path / "r")
    assert again.tokenizer.n_functional == 17
    ids = torch.tensor([router.prompt_ids("math ab")])
    assert torch.equal(router.model(ids), again.model(ids))
    with pytest.raises(FileNotFoundError, match="not a functional-token router"):
        FunctionalTokenRouter.load(tmp_path)


def test_router_vocab_must_match_its_tokens(router):
    from paperlab.papers.octopus_v4 import FunctionalTokenizer

    with pytest.raises(ValueError, match="vocab_size"):
        FunctionalTokenRouter(router.model, FunctionalTokenizer(3))


def test_minilm_centroids_route_by_meaning():
    embedder = MiniLM()
    router = CentroidRouter.fit(
        embedder,
        {
            4: ["what is 3 plus 5", "add 2 and 9", "compute 7 times 8"],
            6: ["when did the battle of hastings happen", "who won the war of 1812"],
        },
    )
    routes = router.route_many(["sum of 4 and 4?", "in which century was the siege of troy"])
    assert [r.index for r in routes] == [4, 6] and routes[0].query == "sum of 4 and 4?"
    with pytest.raises(ValueError, match="no example queries"):
        CentroidRouter.fit(embedder, {1: []})


def test_the_world_has_exact_answers():
    world = make_world(10, seed=0)
    rng = random.Random(1)
    for d in DOMAIN_NAMES:
        for _ in range(20):
            q = world.sample(d, rng)
            assert q.index == INDEX[d] and q.correct(f" {q.answer} ")
            if d == "math":
                a, b = (int(x) for x in q.canonical[len("What is ") : -1].split("+"))
                assert q.answer == str(a + b)
            else:
                name = next(n for n in world.facts[d] if CANONICAL[d].format(x=n) == q.canonical)
                assert q.answer == world.facts[d][name] and name in q.raw
    qs = held_out_queries(world, 3, seed=0)
    assert [q.domain for q in qs] == [d for d in DOMAIN_NAMES for _ in range(3)]
    raw, index, canonical = route_example(world)(random.Random(0))
    assert isinstance(raw, str) and index in INDEX.values() and canonical


def test_the_generalist_matches_the_workers_size_and_compute():
    cfg = SimpleNamespace(dim=32, n_layers=1, n_heads=2, batch_size=8, lr=1e-3, worker_steps=100)
    from paperlab.core.llm.tiny import TinyChatConfig

    def params(dim):
        c = TinyChatConfig(dim=dim, n_layers=1, n_heads=2, max_seq_len=128)
        return Llama(c.llama_config()).num_params()

    g = generalist_dim(cfg)
    total = len(DOMAIN_NAMES) * params(32)
    assert abs(params(g) - total) / total < 0.1
    steps = generalist_steps(cfg, g)
    flops_ratio = steps * params(g) / (len(DOMAIN_NAMES) * 100 * params(32))
    assert abs(flops_ratio - 1) < 0.02
