"""The Kangaroo adapter and its training (Liu et al. 2024, arXiv 2404.18911, Sec. 3.1).

The draft model is the target's own first `exit_layer` layers (the "shallow sub-network")
followed by a light adapter A and the target's frozen LM head:

    h_l   = layers[0:l](embed(x))              # shared with the target: no extra weights
    q     = softmax(lm_head(A(h_l)))            # the draft distribution
    A(h)  = norm(h + attn(input_norm(h)))       # one attention layer, no MLP (Sec. 3.1)

As in the official code, an adapter layer is an input RMSNorm + self-attention + residual,
without the MLP, and a final RMSNorm of its own replaces the target's final norm; the LM head
is the target's and stays frozen. The adapter is trained with the target frozen, by the soft
cross-entropy between the full model's next-token distribution p and the draft's q,
-sum_v p(v) log q(v), and the quantity that matters for speculative decoding, the expected
acceptance E[sum_v min(p(v), q(v))], is logged alongside.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.checkpoint import load_model, read_safetensors_metadata, save_model
from paperlab.core.kv_cache import KVCache
from paperlab.core.llama import Attention, Llama, LlamaConfig, RMSNorm
from paperlab.core.train import History, TrainConfig, eval_mode, train

KIND = "KangarooAdapter"  # the checkpoint kind of an adapter file


class AdapterLayer(nn.Module):
    """input RMSNorm -> self-attention -> residual; no MLP (Sec. 3.1, "one multi-head attention
    layer"). Callable as a core decoder block, so `Llama.run_layers(layers=...)` runs it with the
    target's rotary table and its own KV cache slot `layer_idx`."""

    def __init__(self, config: LlamaConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.dim, config.norm_eps)
        self.self_attn = Attention(config, layer_idx)

    def forward(self, x, cos, sin, mask=None, is_causal=False, cache=None):
        return x + self.self_attn(self.input_layernorm(x), cos, sin, mask, is_causal, cache)


class KangarooAdapter(nn.Module):
    """Adapter A for a target `Llama` with this `config`, reading the residual stream after
    layer `exit_layer` (1-based count of shallow layers: 2 = after layers 0 and 1)."""

    def __init__(self, config: LlamaConfig, *, exit_layer: int = 2, n_layers: int = 1):
        super().__init__()
        if not 1 <= exit_layer < config.n_layers:
            raise ValueError(
                f"KangarooAdapter: exit_layer={exit_layer} must be in 1..{config.n_layers - 1} "
                f"(the target has {config.n_layers} layers)"
            )
        if n_layers < 1:
            raise ValueError(f"KangarooAdapter: n_layers={n_layers} must be >= 1")
        self.config, self.exit_layer = config, exit_layer
        self.layers = nn.ModuleList(AdapterLayer(config, i) for i in range(n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        for name, p in self.named_parameters():  # the core Llama's initialisation
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * n_layers) if name.endswith("o_proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    @classmethod
    def for_model(cls, model: Llama, *, exit_layer: int = 2, n_layers: int = 1) -> KangarooAdapter:
        """A new adapter for `model`. Its attention output starts near zero and its final norm
        starts as a copy of the target's, so before training the draft is the exit layer read
        through the target's own norm and head (the paper's "w/o adapter" draft), and training
        starts from there."""
        weight = model.embed_tokens.weight
        adapter = cls(model.config, exit_layer=exit_layer, n_layers=n_layers)
        # DEVIATION: the official code starts from a freshly initialised module; copying the
        # target's final norm makes the untrained adapter equal the "w/o adapter" draft
        with torch.no_grad():
            adapter.norm.weight.copy_(model.norm.weight)
        return adapter.to(device=weight.device, dtype=weight.dtype)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, max_len: int, batch_size: int = 1) -> KVCache:
        weight = self.norm.weight
        return KVCache(
            batch_size=batch_size,
            n_kv_heads=self.config.n_kv_heads,
            head_dim=self.config.head_dim,
            layers=len(self.layers),
            max_len=max_len,
            device=weight.device,
            dtype=weight.dtype,
        )

    def hidden(self, model: Llama, h_exit: torch.Tensor, cache: KVCache | None = None):
        """Exit-layer states (B, T, dim) -> the adapter's normalised output (B, T, dim)."""
        return self.norm(model.run_layers(h_exit, layers=self.layers, cache=cache))

    def forward(self, model: Llama, h_exit: torch.Tensor, cache: KVCache | None = None):
        """Exit-layer states (B, T, dim) -> draft logits (B, T, vocab) through the target's head."""
        return model.lm_head(self.hidden(model, h_exit, cache))

    # -- checkpoints: the adapter alone (the target is saved separately) ----------------------

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write the adapter to a `.safetensors` file atomically (what rebuilds it, its target's
        config, exit layer, depth and dtype, in its metadata)."""
        config = {
            "llama": asdict(self.config),
            "exit_layer": self.exit_layer,
            "n_layers": len(self.layers),
            "dtype": str(self.norm.weight.dtype).removeprefix("torch."),
        }
        return save_model(path, self, kind=KIND, config=config)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
    ) -> KangarooAdapter:
        """Load an adapter; tensors keep their stored dtype unless `dtype` is given (use the
        target's: `dtype=model.embed_tokens.weight.dtype`)."""
        read_safetensors_metadata(path, kind=KIND)  # one clear error for any other model file

        def build(config: dict) -> KangarooAdapter:
            llama = LlamaConfig.from_dict(config["llama"])
            adapter = cls(llama, exit_layer=config["exit_layer"], n_layers=config["n_layers"])
            return adapter.to(dtype=getattr(torch, config["dtype"]))

        adapter, _ = load_model(path, build, kind=KIND)
        return adapter.to(device=device, dtype=dtype)

    def check_target(self, model: Llama) -> None:
        """Raise ValueError unless `model` has the shape this adapter was built for."""
        mine, theirs = asdict(self.config), asdict(model.config)
        differ = {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k] and k != "dropout"}
        if differ:
            raise ValueError(f"adapter and target model differ in {differ} (adapter, target)")
        a, t = self.norm.weight, model.embed_tokens.weight
        if (a.dtype, a.device) != (t.dtype, t.device):
            raise ValueError(
                f"adapter is {a.dtype} on {a.device} but the target is {t.dtype} on {t.device}; "
                "move it with adapter.to(...)"
            )


# ---------------------------------------------------------------------------------------------
# Training: soft cross-entropy to the frozen full model (Sec. 3.1)


@torch.no_grad()
def teacher(model: Llama, x: torch.Tensor, exit_layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One frozen target forward: (exit-layer states (B, T, dim), full-model logits (B, T, V))."""
    h_exit = model.run_layers(model.embed(x), 0, exit_layer)
    return h_exit, model.head(model.run_layers(h_exit, exit_layer, None))


def soft_cross_entropy(
    draft_logits: torch.Tensor, target_logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(-E_p[log q], E[sum_v min(p, q)]) averaged over positions; p from the target's logits,
    q from the draft's. The second is the expected acceptance rate of one drafted token under
    the speculative sampling rule (Leviathan et al. 2023, Sec. 3.1)."""
    p = F.softmax(target_logits.float(), dim=-1)
    log_q = F.log_softmax(draft_logits.float(), dim=-1)
    loss = -(p * log_q).sum(-1).mean()
    accept = torch.minimum(p, log_q.exp()).sum(-1).mean()
    return loss, accept.detach()


def adapter_loss(
    model: Llama, adapter: KangarooAdapter, x: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    h_exit, target_logits = teacher(model, x, adapter.exit_layer)
    draft_logits = adapter(model, h_exit)
    loss, accept = soft_cross_entropy(draft_logits, target_logits)
    top1 = (draft_logits.argmax(-1) == target_logits.argmax(-1)).float().mean()
    return loss, {"accept": float(accept), "top1": float(top1)}


@torch.no_grad()
def evaluate_adapter(
    model: Llama, adapter: KangarooAdapter, batches: Iterable, n_batches: int
) -> dict[str, float]:
    """Mean soft-CE, expected acceptance and top-1 agreement with the target over `n_batches`
    batches of (x, ...) or x."""
    totals = {"soft_ce": 0.0, "accept": 0.0, "top1": 0.0}
    it: Iterator = iter(batches)
    with eval_mode(adapter):
        for _ in range(n_batches):
            batch = next(it)
            x = batch[0] if isinstance(batch, tuple | list) else batch
            loss, metrics = adapter_loss(model, adapter, x)
            totals["soft_ce"] += float(loss)
            totals["accept"] += metrics["accept"]
            totals["top1"] += metrics["top1"]
    return {k: v / n_batches for k, v in totals.items()}


def train_adapter(
    model: Llama, adapter: KangarooAdapter, batches: Iterable, cfg: TrainConfig, **train_kwargs
) -> History:
    """Train `adapter` against the frozen `model` (history keys: loss = soft-CE, accept, top1).
    `batches` yields (x, y) or x token batches; y is not used (the target's own distribution is
    the label). `train_kwargs` go to `paperlab.core.train.train` (eval_fn, on_step, device)."""
    adapter.check_target(model)
    train_kwargs.setdefault("device", str(model.embed_tokens.weight.device))
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    try:  # the target is a frozen teacher: eval mode (no dropout), no gradients
        with eval_mode(model):
            return train(
                adapter,
                lambda a, batch: adapter_loss(
                    model, a, batch[0] if isinstance(batch, tuple | list) else batch
                ),
                batches,
                cfg,
                **train_kwargs,
            )
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
