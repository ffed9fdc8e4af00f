"""TransNAR's models: closed gates give the baseline's logits, max aggregation ignores
non-edges, cached greedy decoding equals recomputation, the tokenizer round-trips, config
errors are one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperlab.claims import UserError
from paperlab.core.device import torch_threads
from paperlab.core.llama import LlamaConfig
from paperlab.papers.transnar import (
    NAR,
    TextDecoder,
    TripletGMPNN,
    collate_graphs,
    decode,
    encode,
    format_example,
    graph_form,
    greedy_decode,
    masked_max,
    random_positions,
    sample,
)
from paperlab.papers.transnar.claims import PAPER
from paperlab.papers.transnar.model import VOCAB_SIZE


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


CONFIG = LlamaConfig(
    vocab_size=VOCAB_SIZE, dim=32, n_layers=2, n_heads=2, ffn_hidden=64, max_seq_len=512
)


def pair(seed: int = 0) -> tuple[TextDecoder, TextDecoder]:
    torch.manual_seed(seed)
    base = TextDecoder(config=CONFIG, cross_attention=False)
    tnar = TextDecoder(config=CONFIG, node_dim=16, cross_attention=True)
    missing, unexpected = tnar.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("xattn.") for k in missing)
    return base.eval(), tnar.eval()


def text_batch(B: int = 3, T: int = 20, N: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB_SIZE, (B, T), generator=g)
    nodes = torch.randn(B, N, 16, generator=g)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, 3:] = False
    return ids, nodes, mask, random_positions(B, T, 512, g)


def test_closed_gates_give_exactly_the_baselines_logits():
    base, tnar = pair()
    ids, nodes, mask, pos = text_batch()
    want = base(ids, position_ids=pos)
    got = tnar(ids, nodes=nodes, node_mask=mask, position_ids=pos)
    assert torch.equal(got, want)
    with torch.no_grad():  # open a gate: the node embeddings now change the logits
        tnar.xattn["0"].attn_gate.fill_(0.5)
    assert not torch.allclose(tnar(ids, nodes=nodes, node_mask=mask, position_ids=pos), want)


def test_gates_start_closed_and_baseline_has_no_cross_attention():
    base, tnar = pair()
    assert len(base.xattn) == 0 and len(tnar.xattn) == CONFIG.n_layers
    for block in tnar.xattn.values():
        assert block.attn_gate.item() == 0.0 and block.ffn_gate.item() == 0.0
    own_params = tnar.num_params() - sum(p.numel() for p in tnar.xattn.parameters())
    assert own_params == base.num_params()  # same transformer; TransNAR adds the blocks only


def test_padded_nodes_are_not_attended():
    _, tnar = pair()
    with torch.no_grad():
        for block in tnar.xattn.values():
            block.attn_gate.fill_(1.0)
    ids, nodes, mask, pos = text_batch()
    out = tnar(ids, nodes=nodes, node_mask=mask, position_ids=pos)
    nodes2 = nodes.clone()
    nodes2[0, 3:] = 100.0  # padding of row 0
    assert torch.allclose(tnar(ids, nodes=nodes2, node_mask=mask, position_ids=pos), out)


def test_max_aggregation_ignores_non_edges():
    m = torch.randn(1, 3, 3, 4)
    adj = torch.tensor([[[1, 0, 1], [0, 1, 0], [0, 0, 0]]], dtype=torch.float32)
    out = masked_max(m, adj)
    assert torch.equal(out[0, 0], torch.maximum(m[0, 0, 0], m[0, 0, 2]))
    assert torch.equal(out[0, 1], m[0, 1, 1]) and torch.equal(out[0, 2], torch.zeros(4))
    # one processor step: a node's update does not see a non-neighbour (no triplets)
    torch.manual_seed(0)
    step = TripletGMPNN(hidden=8, use_triplets=False)
    x, h, e = torch.randn(1, 3, 8), torch.randn(1, 3, 8), torch.randn(1, 3, 3, 8)
    adj = torch.tensor([[[1, 1, 0], [1, 1, 1], [0, 1, 1]]], dtype=torch.float32)
    keep = torch.ones(1, 3, dtype=torch.bool)
    before = step(x, h, e, adj, keep)
    x2 = x.clone()
    x2[0, 2] += 5.0  # node 2 is not adjacent to node 0
    after = step(x2, h, e, adj, keep)
    assert torch.allclose(after[0, 0], before[0, 0]) and not torch.allclose(
        after[0, 1], before[0, 1]
    )


def test_nar_output_shapes_and_padding():
    nar = NAR(algorithms=("bfs", "minimum"), hidden=16).eval()
    rng = np.random.default_rng(0)
    graphs = [graph_form(sample("bfs", n, rng)) for n in (3, 5)]
    batch = collate_graphs(graphs)
    logits = nar("bfs", batch)
    assert logits.shape == (2, 5, 5) and torch.isinf(logits[0, :, 3:]).all()
    assert nar.embed("bfs", batch).shape == (2, 5, 16)
    mins = collate_graphs([graph_form(sample("minimum", 4, rng))])
    assert nar("minimum", mins).shape == (1, 4)


def test_tokenizer_round_trips_clrs_text():
    q, a = format_example(sample("dijkstra", 5, np.random.default_rng(1)))
    assert decode(encode(q + a)) == q + a
    with pytest.raises(ValueError, match="alphabet"):
        encode("é")


@pytest.mark.parametrize("cross_attention", [True, False])
def test_cached_greedy_decoding_equals_recompute(cross_attention: bool):
    torch.manual_seed(1)
    model = TextDecoder(config=CONFIG, node_dim=16, cross_attention=cross_attention).eval()
    if cross_attention:
        with torch.no_grad():
            for block in model.xattn.values():
                block.attn_gate.fill_(1.0)
    prompt = encode("bfs:\ns: 0, A: [[0 1], [1 0]]\npi:\n")
    nodes, mask = torch.randn(1, 2, 16), torch.ones(1, 2, dtype=torch.bool)
    got = greedy_decode(
        model, [prompt], max_new_tokens=6, nodes=nodes, node_mask=mask, randomized=False
    )[0]
    seq = list(prompt)
    for _ in range(len(got)):  # no cache: the whole sequence every step
        ids = torch.tensor([seq])
        logits = model(ids, nodes=nodes, node_mask=mask, position_ids=torch.arange(len(seq))[None])
        seq.append(int(logits[0, -1].argmax()))
    assert got == seq[len(prompt) :]


def test_random_positions_are_sorted_distinct_and_in_range():
    pos = random_positions(4, 50, 64, torch.Generator().manual_seed(0))
    assert pos.shape == (4, 50) and int(pos.max()) < 64
    assert bool((pos[:, 1:] > pos[:, :-1]).all())
    with pytest.raises(ValueError, match="max_position"):
        random_positions(1, 65, 64)


def test_config_rejects_bad_overrides():
    with pytest.raises(UserError, match="algorithms"):
        PAPER.make_config("default", {"algorithms": "quicksort"})
    with pytest.raises(UserError, match="eval_sizes"):
        PAPER.make_config("default", {"eval_sizes": "4,6"})
    with pytest.raises(UserError, match="max_position"):
        PAPER.make_config("default", {"max_position": "200"})
    with pytest.raises(UserError, match="unknown --set key"):
        PAPER.make_config("default", {"gate": "0"})
    with pytest.raises(UserError, match="expected a value of type int"):
        PAPER.make_config("default", {"steps": "many"})
