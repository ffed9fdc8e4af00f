"""The multi-token prediction model and its two training schedules (Gloeckle et al. 2024,
arXiv 2404.19737, Sec. 2).

A shared trunk f_s (embedding + L - n decoder layers) turns x_{1:t} into z_t; n independent
heads f_{h_i} (one decoder layer each) and a shared unembedding f_u (final RMSNorm + lm_head)
give P(x_{t+i} | x_{1:t}) = softmax(f_u(f_{h_i}(z_t))), i = 1..n.

Layout, as in Meta's released 7B inference code: head 1 is the *last layer* of a plain core
`Llama` of depth L - n + 1, so trunk + head 1 is an ordinary next-token model (`model.llama`:
core `generate`, safetensors, Hugging Face conversion all apply to it unchanged); heads 2..n live
in `extra_heads`. Parameter parity (Sec. 3): the trunk loses n - 1 layers, so a model with n
heads has exactly the parameters of the next-token (n = 1) model of depth L.

`model.new_cache()` gives every decoder layer its own slot (0..L-n-1 trunk, L-n head 1,
L-n+1.. heads 2..n) for cached `model(ids, cache=...)` calls; self-speculative decoding
(`speculative.py`) caches trunk + head 1 there and runs heads 2..n batched in `DraftHeads`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.kv_cache import KVCache
from paperlab.core.llama import DecoderLayer, Llama, LlamaConfig

IGNORE_INDEX = -100  # targets with this value carry no loss (e.g. the prompt half of a copy task)


@dataclass
class MTPConfig(LlamaConfig):
    """A `LlamaConfig` whose `n_layers` is the TOTAL number of decoder layers L (the depth of the
    next-token baseline with the same parameters), plus the number of heads n."""

    n_future: int = 4  # n: head i = 1..n predicts token t + i

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.n_future <= self.n_layers:
            raise ValueError(
                f"MTPConfig: n_future={self.n_future} must be in 1..n_layers={self.n_layers} "
                "(each head is one of the L decoder layers)"
            )

    @property
    def trunk_layers(self) -> int:
        return self.n_layers - self.n_future

    def base_config(self) -> LlamaConfig:
        """The core config of trunk + head 1 (a plain Llama of depth L - n + 1)."""
        values = {f.name: getattr(self, f.name) for f in fields(LlamaConfig)}
        return LlamaConfig(**{**values, "n_layers": self.trunk_layers + 1})


class MultiTokenLlama(nn.Module):
    """Shared trunk + n one-layer heads + shared unembedding (Sec. 2, Fig. 1).

    z = model.trunk(ids)                   # (B, T, dim)   f_s
    h = model.head_hidden(i, z)            # (B, T, dim)   f_{h_i}, i = 0..n-1 (0-based)
    logits = model.unembed(h)              # (B, T, V)     f_u
    model(ids)                             # (B, T, n, V)  all heads at once
    """

    def __init__(self, *, config: MTPConfig):
        super().__init__()
        self.config = config
        base = config.base_config()
        self.llama = Llama(base)  # embed, trunk layers, head 1 (= its last layer), norm, lm_head
        first_extra = config.trunk_layers + 1
        self.extra_heads = nn.ModuleList(
            DecoderLayer(base, first_extra + j) for j in range(config.n_future - 1)
        )
        self.extra_heads.apply(Llama._init_weights)
        # every layer gets the residual-branch scale of an L-layer model (GPT-2 init), so n = 1
        # and n = 4 start from the same distribution of weights
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @property
    def n_future(self) -> int:
        return self.config.n_future

    @property
    def heads(self) -> list[nn.Module]:
        """The n head layers; heads[i] predicts token t + 1 + i."""
        return [self.llama.layers[-1], *self.extra_heads]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- the pieces ----------------------------------------------------------------------------

    def trunk(self, input_ids: torch.Tensor, *, cache: KVCache | None = None) -> torch.Tensor:
        """f_s: (B, T) token ids -> (B, T, dim), the residual stream after L - n layers."""
        h = self.llama.embed(input_ids)
        return self.llama.run_layers(h, 0, self.config.trunk_layers, cache=cache)

    def head_hidden(self, i: int, z: torch.Tensor, *, cache: KVCache | None = None) -> torch.Tensor:
        """f_{h_i}: head i's decoder layer (0-based) on trunk output z (B, T, dim)."""
        return self.llama.run_layers(z, layers=[self.heads[i]], cache=cache)

    def unembed(self, h: torch.Tensor) -> torch.Tensor:
        """f_u, shared by all heads: final RMSNorm + lm_head, (..., dim) -> (..., V)."""
        return self.llama.head(h)

    def forward(
        self, input_ids: torch.Tensor, *, n_heads: int | None = None, cache: KVCache | None = None
    ) -> torch.Tensor:
        """(B, T) -> logits (B, T, n_heads, V); [:, t, i] predicts token t + 1 + i."""
        z = self.trunk(input_ids, cache=cache)
        n = self.n_future if n_heads is None else n_heads
        latents = [self.head_hidden(i, z, cache=cache) for i in range(n)]
        return self.unembed(torch.stack(latents, dim=2))

    def new_cache(self, batch_size: int = 1, max_len: int | None = None) -> KVCache:
        """One cache with a slot for every decoder layer: trunk, head 1 and heads 2..n."""
        return KVCache.for_model(
            self.llama, batch_size=batch_size, max_len=max_len, layers=range(self.config.n_layers)
        )

    # -- checkpoints: one safetensors file, the config in its metadata ------------------------

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write a `.safetensors` file atomically (the config goes into its metadata)."""
        from paperlab.core.checkpoint import save_safetensors_atomic

        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        if self.config.tie_embeddings:
            del state["llama.lm_head.weight"]  # shared storage; re-tied on load
        metadata = {
            "paperlab_model": "MultiTokenLlama",
            "paperlab_config": json.dumps(asdict(self.config)),
        }
        return save_safetensors_atomic(state, file, metadata)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> MultiTokenLlama:
        from safetensors.torch import load_file

        from paperlab.core.checkpoint import read_safetensors_metadata

        metadata = read_safetensors_metadata(path, kind="MultiTokenLlama")
        model = cls(config=MTPConfig(**json.loads(metadata["paperlab_config"])))
        state = load_file(str(path))
        if model.config.tie_embeddings:
            state["llama.lm_head.weight"] = state["llama.embed_tokens.weight"]
        model.load_state_dict(state)
        return model


# ---------------------------------------------------------------------------------------------
# Training: the loss (Sec. 2) and the memory-efficient schedule (Sec. 2, Fig. 2)


def head_loss(
    model: MultiTokenLlama, z: torch.Tensor, targets: torch.Tensor, i: int
) -> torch.Tensor:
    """Cross-entropy of head i (0-based) on trunk output z (B, T, dim).

    `targets` (B, T) are the next-token targets (y_t = x_{t+1}); head i at position t predicts
    x_{t+1+i} = y_{t+i}, so it is scored on positions 0..T-1-i (the last i have no target)."""
    T = z.shape[1]
    if T <= i:
        raise ValueError(f"a window of {T} tokens has no target for head {i + 1}; use T > n")
    h = model.head_hidden(i, z[:, : T - i])  # causal: dropping the tail changes nothing before it
    logits = model.unembed(h)  # (B, T - i, V)
    return F.cross_entropy(
        logits.flatten(0, 1).float(), targets[:, i:].flatten(), ignore_index=IGNORE_INDEX
    )


def mtp_loss(
    model: MultiTokenLlama, input_ids: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The naive objective (Sec. 2): all n heads forward, L_n = sum_i CE_i. Returns
    (L_n, [CE_1..CE_n])."""
    # DEVIATION: the paper's L_n also sums over positions; each CE_i here is a mean over its
    # positions (a constant factor per batch, which Adam's normalised update does not see).
    z = model.trunk(input_ids)
    losses = [head_loss(model, z, targets, i) for i in range(model.n_future)]
    return torch.stack(losses).sum(), losses


def efficient_backward(
    model: MultiTokenLlama, input_ids: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Backpropagate L_n = sum_i CE_i with the memory-efficient schedule (Sec. 2, Fig. 2) and
    return (L_n, [CE_1..CE_n]) detached. Gradients equal those of `mtp_loss(...)[0].backward()`.

    The trunk runs forward once; its output is detached into a leaf z that requires grad. Each
    head in turn runs forward, computes its loss and backpropagates into z.grad (and its own and
    the shared unembedding's parameters); its logits (B, T, V) and their graph are freed before
    the next head. One final backward through the trunk with the accumulated dL/dz. Peak memory
    holds one head's logits: O(V + d) instead of O(nV + d) per token."""
    trunk_out = model.trunk(input_ids)  # (B, T, dim), keeps the trunk's graph
    z = trunk_out.detach().requires_grad_(True)  # the leaf where head gradients accumulate
    losses = []
    for i in range(model.n_future):
        loss = head_loss(model, z, targets, i)
        loss.backward()  # frees this head's logits and graph
        losses.append(loss.detach())
    trunk_out.backward(z.grad)  # one backward through the trunk (Fig. 2, last step)
    return torch.stack(losses).sum(), losses


def make_loss_fn(*, efficient: bool = True):
    """A `loss_fn(model, (x, y))` for `paperlab.core.train.train` with `manual_backward=True`:
    it backpropagates itself and returns (L_n, {"head1": CE_1, ...}) for logging."""

    def loss_fn(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        model = getattr(model, "module", model)  # single process: heads run outside DDP
        x, y = batch
        if efficient:
            total, losses = efficient_backward(model, x, y)
        else:
            total, losses = mtp_loss(model, x, y)
            total.backward()
            total, losses = total.detach(), [loss.detach() for loss in losses]
        return total, {f"head{i + 1}": float(loss) for i, loss in enumerate(losses)}

    return loss_fn


@torch.no_grad()
def head_losses(
    model: MultiTokenLlama, input_ids: torch.Tensor, targets: torch.Tensor
) -> list[float]:
    """Per-head validation cross-entropies (nats/token), no gradients."""
    return [float(loss) for loss in mtp_loss(model, input_ids, targets)[1]]
