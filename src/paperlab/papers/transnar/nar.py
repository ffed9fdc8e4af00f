"""The neural algorithmic reasoner: encode -> process (Triplet-GMPNN) -> decode.

Ibarz et al. 2022 ("A Generalist Neural Algorithmic Learner", Sec. 3), the NAR TransNAR
pre-trains and freezes (TransNAR Sec. 3): per-algorithm linear encoders of the node and edge
inputs, one shared processor applied for ``steps`` rounds, per-algorithm decoders.

Processor step (Eq. 1 of TransNAR / Ibarz Sec. 3.2), with ``z_i = [x_i ; h_i]``:

    m_ij  = f_m(z_i, z_j, e_ij) + φ(max_k t_ijk)        messages from sender j to receiver i
    t_ijk = ψ(z_i, z_j, z_k, e_ij, e_ik, e_kj)           triplet (edge) reasoning
    agg_i = max_{j : adj_ij} m_ij                        max aggregation over neighbours only
    ĥ_i   = LayerNorm(f_r(z_i, agg_i))
    h_i   = g_i ⊙ ĥ_i + (1 - g_i) ⊙ h_i,  g_i = σ(f_g(z_i, agg_i)), gate bias -3 (GMPNN)

Batches hold graphs of different sizes padded to N nodes (``node_mask``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperlab.papers.transnar.clrs import Graph

NODE_FEATURES, EDGE_FEATURES = 3, 2  # (pos, key, s), (A, adj): see clrs.graph_form


def masked_max(messages: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """``max_j messages[b, i, j]`` over ``adj[b, i, j] > 0`` only; 0 where a node has none.
    messages (B, N, N, D), adj (B, N, N) -> (B, N, D)."""
    neg = torch.finfo(messages.dtype).min
    out = messages.masked_fill(adj[..., None] <= 0, neg).amax(dim=2)
    return torch.where(adj.sum(-1, keepdim=True) > 0, out, torch.zeros_like(out))


class TripletGMPNN(nn.Module):
    """One processor step, shared across steps and algorithms."""

    def __init__(self, *, hidden: int, triplet_dim: int = 8, use_triplets: bool = True):
        super().__init__()
        z = 2 * hidden
        self.use_triplets = use_triplets
        self.msg_recv, self.msg_send = nn.Linear(z, hidden), nn.Linear(z, hidden)
        self.msg_edge = nn.Linear(hidden, hidden)
        self.msg_mlp = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden))
        if use_triplets:
            self.t_i, self.t_j, self.t_k = (nn.Linear(z, triplet_dim) for _ in range(3))
            self.t_ij, self.t_ik, self.t_kj = (nn.Linear(hidden, triplet_dim) for _ in range(3))
            self.t_out = nn.Linear(triplet_dim, hidden)
        self.out_self, self.out_agg = nn.Linear(z, hidden), nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.gate_self, self.gate_agg = nn.Linear(z, hidden), nn.Linear(hidden, hidden)
        self.gate_out = nn.Linear(hidden, hidden)
        nn.init.constant_(self.gate_out.bias, -3.0)  # GMPNN: gates start mostly closed

    def triplets(self, z, e, node_mask):
        """φ(max_k t_ijk) (B, N, N, hidden); the max runs over real nodes k."""
        t = (
            self.t_i(z)[:, :, None, None]
            + self.t_j(z)[:, None, :, None]
            + self.t_k(z)[:, None, None, :]
            + self.t_ij(e)[:, :, :, None]
            + self.t_ik(e)[:, :, None, :]
            + self.t_kj(e).transpose(1, 2)[:, None]
        )
        keep = node_mask[:, None, None, :, None]  # (B, 1, 1, N, 1): real k
        t = t.masked_fill(~keep, torch.finfo(t.dtype).min).amax(dim=3)
        return self.t_out(F.relu(t))

    def forward(self, x, h, e, adj, node_mask):
        """x, h (B, N, hidden) encoded inputs and state; e (B, N, N, hidden); adj (B, N, N)."""
        z = torch.cat([x, h], dim=-1)
        m = self.msg_recv(z)[:, :, None] + self.msg_send(z)[:, None, :] + self.msg_edge(e)
        m = self.msg_mlp(m)
        if self.use_triplets:
            m = m + self.triplets(z, e, node_mask)
        agg = masked_max(m, adj)  # (B, N, hidden)
        new = self.norm(F.relu(self.out_self(z) + self.out_agg(agg)))
        gate = torch.sigmoid(self.gate_out(F.relu(self.gate_self(z) + self.gate_agg(agg))))
        return (gate * new + (1 - gate) * h) * node_mask[..., None]


class NAR(nn.Module):
    """Multi-task NAR: per-algorithm encoders/decoders around one shared processor."""

    def __init__(
        self,
        *,
        algorithms: tuple[str, ...],
        hidden: int = 32,
        triplet_dim: int = 8,
        use_triplets: bool = True,
    ):
        super().__init__()
        self.algorithms, self.hidden = tuple(algorithms), hidden
        self.node_enc = nn.ModuleDict({a: nn.Linear(NODE_FEATURES, hidden) for a in algorithms})
        self.edge_enc = nn.ModuleDict({a: nn.Linear(EDGE_FEATURES, hidden) for a in algorithms})
        self.processor = TripletGMPNN(
            hidden=hidden, triplet_dim=triplet_dim, use_triplets=use_triplets
        )
        # decoders: pointer (score of receiver i pointing at j) or mask_one (one node)
        self.dec_q = nn.ModuleDict({a: nn.Linear(2 * hidden, hidden) for a in algorithms})
        self.dec_k = nn.ModuleDict({a: nn.Linear(2 * hidden, hidden) for a in algorithms})
        self.dec_e = nn.ModuleDict({a: nn.Linear(hidden, 1) for a in algorithms})
        self.dec_node = nn.ModuleDict({a: nn.Linear(2 * hidden, 1) for a in algorithms})

    def embed(self, algo: str, batch: GraphBatch, steps: int | None = None) -> torch.Tensor:
        """Node embeddings (B, N, hidden) after ``steps`` rounds (default: N, the graph size)."""
        x = self.node_enc[algo](batch.node)
        e = self.edge_enc[algo](batch.edge)
        h = torch.zeros_like(x)
        # DEVIATION: n processor steps with no hints and no graph-level features (CLRS trains on
        # the hint trajectory, one step per algorithm step).
        for _ in range(batch.node.shape[1] if steps is None else steps):
            h = self.processor(x, h, e, batch.adj, batch.node_mask)
        return h

    def decode(self, algo: str, batch: GraphBatch, h: torch.Tensor) -> torch.Tensor:
        """Logits over nodes: (B, N, N) pointers for sort/BFS/Dijkstra, (B, N) for ``min``."""
        x = self.node_enc[algo](batch.node)
        z = torch.cat([x, h], dim=-1)
        pad = ~batch.node_mask
        if algo == "minimum":
            return self.dec_node[algo](z).squeeze(-1).masked_fill(pad, float("-inf"))
        # DEVIATION: pointer logits = scaled q.k plus an edge term (CLRS: a max over edge
        # messages).
        q, k = self.dec_q[algo](z), self.dec_k[algo](z)
        scores = q @ k.transpose(1, 2) / self.hidden**0.5
        scores = scores + self.dec_e[algo](self.edge_enc[algo](batch.edge)).squeeze(-1)
        return scores.masked_fill(pad[:, None, :], float("-inf"))

    def forward(self, algo: str, batch: GraphBatch) -> torch.Tensor:
        return self.decode(algo, batch, self.embed(algo, batch))


# ---------------------------------------------------------------------------------------------
# Batches of graphs and the NAR's loss / accuracy


@dataclass
class GraphBatch:
    node: torch.Tensor  # (B, N, 3)
    edge: torch.Tensor  # (B, N, N, 2)
    adj: torch.Tensor  # (B, N, N)
    node_mask: torch.Tensor  # (B, N) bool
    target: torch.Tensor  # (B, N) pointers (-1 = padding) or (B,) index

    def to(self, device) -> GraphBatch:
        return GraphBatch(*(t.to(device) for t in vars(self).values()))


def collate_graphs(graphs: list[Graph]) -> GraphBatch:
    """Pad graphs of one algorithm to the largest; padding nodes have no edges."""
    B, N = len(graphs), max(g.node.shape[0] for g in graphs)
    node = np.zeros((B, N, NODE_FEATURES), np.float32)
    edge = np.zeros((B, N, N, EDGE_FEATURES), np.float32)
    adj = np.zeros((B, N, N), np.float32)
    mask = np.zeros((B, N), bool)
    pointer = not isinstance(graphs[0].target, int)
    target = np.full((B, N), -1, np.int64) if pointer else np.zeros(B, np.int64)
    for b, g in enumerate(graphs):
        n = g.node.shape[0]
        node[b, :n], edge[b, :n, :n], adj[b, :n, :n], mask[b, :n] = g.node, g.edge, g.adj, True
        if pointer:
            target[b, :n] = g.target
        else:
            target[b] = g.target
    arrays = (node, edge, adj, mask, target)
    return GraphBatch(*(torch.from_numpy(a) for a in arrays))


def nar_loss(model: NAR, algo: str, batch: GraphBatch) -> torch.Tensor:
    logits = model(algo, batch)
    if logits.dim() == 2:
        return F.cross_entropy(logits, batch.target)
    return F.cross_entropy(logits.flatten(0, 1), batch.target.flatten(), ignore_index=-1)


@torch.no_grad()
def nar_accuracy(model: NAR, algo: str, batch: GraphBatch) -> float:
    """Element-wise accuracy of the decoded outputs (pointers per node, or the one node), on
    the model's device."""
    batch = batch.to(next(model.parameters()).device)
    pred = model(algo, batch).argmax(-1)
    if pred.dim() == 1:
        return float((pred == batch.target).float().mean())
    real = batch.target >= 0
    return float((pred == batch.target)[real].float().mean())
