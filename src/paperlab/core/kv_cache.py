"""A preallocated key/value cache for `paperlab.core.llama`.

Each covered layer owns a `(B, n_kv_heads, capacity, head_dim)` key and value buffer and its own
length. New keys/values are written in place (`update`), so batch-1 decode never concatenates;
when a write would overflow, the buffers double (amortised O(1)).

Per-layer lengths are what makes layer subsets work: a self-speculative decoder (Kangaroo) runs
the shallow layers ahead for a few drafted tokens, then the deep layers catch up over the same
tokens in one forward; between the two, shallow and deep layers hold different lengths. A cache
may also cover only some layer indices (`layers=range(0, 2)`), e.g. one cache for a draft
sub-network and another for the rest.

Rows of a batch share one length; ragged prompts are left-padded and masked (see `generate`).
`truncate(pos)` rolls every layer back to `pos` tokens (rejected draft tokens); `clone()` copies.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class KVCache:
    def __init__(
        self,
        *,
        batch_size: int,
        n_kv_heads: int,
        head_dim: int,
        layers: int | Iterable[int],
        max_len: int = 256,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        """`layers` = the layer indices this cache covers (an int n means range(n))."""
        self.layers = list(range(layers)) if isinstance(layers, int) else list(layers)
        shape = (batch_size, n_kv_heads, max(1, max_len), head_dim)
        self.k = {i: torch.zeros(shape, device=device, dtype=dtype) for i in self.layers}
        self.v = {i: torch.zeros(shape, device=device, dtype=dtype) for i in self.layers}
        self.lengths = {i: 0 for i in self.layers}

    @classmethod
    def for_model(
        cls,
        model: torch.nn.Module,
        *,
        batch_size: int = 1,
        max_len: int | None = None,
        layers: Iterable[int] | None = None,
    ) -> KVCache:
        """A cache shaped for `model` (a `Llama`), on its device and in its dtype."""
        config = model.config
        weight = model.embed_tokens.weight
        return cls(
            batch_size=batch_size,
            n_kv_heads=config.n_kv_heads,
            head_dim=config.head_dim,
            layers=config.n_layers if layers is None else layers,
            max_len=config.max_seq_len if max_len is None else max_len,
            device=weight.device,
            dtype=weight.dtype,
        )

    @property
    def capacity(self) -> int:
        return next(iter(self.k.values())).shape[2] if self.k else 0

    @property
    def batch_size(self) -> int:
        return next(iter(self.k.values())).shape[0]

    def seq_len(self, layer: int | None = None) -> int:
        """Tokens cached in `layer`; with no layer, the common length of all covered layers."""
        if layer is not None:
            return self.lengths[layer]
        lengths = set(self.lengths.values())
        if len(lengths) > 1:
            raise ValueError(f"cached layers have different lengths {self.lengths}; pass a layer")
        return lengths.pop() if lengths else 0

    @property
    def length(self) -> int:
        return self.seq_len()

    def update(
        self, layer: int, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append `key`/`value` (B, n_kv_heads, T, head_dim) to `layer`; return all its keys/values
        so far as views (B, n_kv_heads, length, head_dim)."""
        start = self.lengths[layer]
        end = start + key.shape[2]
        if end > self.k[layer].shape[2]:
            self._grow(layer, end)
        k, v = self.k[layer], self.v[layer]
        k.narrow(2, start, end - start).copy_(key)  # in place; one op each (no index tuple)
        v.narrow(2, start, end - start).copy_(value)
        self.lengths[layer] = end
        return k.narrow(2, 0, end), v.narrow(2, 0, end)

    def _grow(self, layer: int, needed: int) -> None:
        old_k, old_v = self.k[layer], self.v[layer]
        capacity = max(needed, 2 * old_k.shape[2])
        n = self.lengths[layer]
        self.k[layer] = old_k.new_zeros((*old_k.shape[:2], capacity, old_k.shape[3]))
        self.v[layer] = old_v.new_zeros((*old_v.shape[:2], capacity, old_v.shape[3]))
        self.k[layer][:, :, :n] = old_k[:, :, :n]
        self.v[layer][:, :, :n] = old_v[:, :, :n]

    def truncate(self, pos: int) -> None:
        """Forget everything at positions >= `pos` in every layer (no copy)."""
        if pos < 0:
            raise ValueError(f"truncate position must be >= 0, got {pos}")
        for i in self.layers:
            self.lengths[i] = min(self.lengths[i], pos)

    def clone(self) -> KVCache:
        new = KVCache.__new__(KVCache)
        new.layers = list(self.layers)
        new.k = {i: t.clone() for i, t in self.k.items()}
        new.v = {i: t.clone() for i, t in self.v.items()}
        new.lengths = dict(self.lengths)
        return new

    def __repr__(self) -> str:
        return (
            f"KVCache(layers={self.layers}, lengths={sorted(set(self.lengths.values()))}, "
            f"capacity={self.capacity})"
        )
