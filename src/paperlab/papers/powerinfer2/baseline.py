"""The dense references, and the pieces every variant shares.

- ``InMemoryDense``: the whole model in memory (all FFN weights resident): the speed a budget
  is measured against, and the reference output.
- ``MmapDense``: llama.cpp-style on-demand loading: the same bundle file the engine reads is
  memory-mapped and viewed as one ``(ffn, 3, dim)`` tensor per layer without copying; every
  token computes the dense FFN over all neurons, so every page of the FFN is touched. Under a
  budget of B bytes only B bytes of the mapped FFN may stay resident: the first B bytes in file
  order (layer 0 first) are kept, the rest of each layer is evicted right after the layer
  computes (``madvise(MADV_DONTNEED)`` on the mapping, then ``posix_fadvise(DONTNEED)`` on the
  file), so the next token faults it in from disk again. This is generous to the baseline: it
  keeps the kernel's readahead and fault-around (large sequential reads), and for a cyclic scan
  over more data than fits, keeping a fixed B bytes is the optimal policy (an LRU page cache
  under real memory pressure would evict every page before its reuse and hit ~0%).
- ``decode``: one decode loop (prefill, then one token at a time with a KV cache) that all
  variants run, so only the FFN differs between them; ``shell_model`` builds a ``Llama`` with
  its FFNs swapped for a variant's module without ever allocating the dense FFN weights.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.data.text import ByteTokenizer
from paperlab.core.device import torch_threads
from paperlab.core.generate import sample_next
from paperlab.core.kv_cache import KVCache
from paperlab.core.llama import Llama, LlamaConfig, RotaryEmbedding
from paperlab.papers.powerinfer2.cache import parse_budget
from paperlab.papers.powerinfer2.layout import (
    FILES,
    PAGE,
    BundleFile,
    load_engine_folder,
    page_cache_bytes,
    proc_read_bytes,
)


def ffn_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """ReGLU FFN restricted to the neurons in ``rows`` (n, 3, dim): x (N, dim) -> (N, dim)."""
    gate = F.linear(x, rows[:, 0])  # (N, n); linear takes the strided rows, no transpose op
    up = F.linear(x, rows[:, 1])
    return gate.relu_().mul_(up) @ rows[:, 2]  # (N, dim)


@torch.inference_mode()
def decode(
    model: Llama,
    ids: torch.Tensor,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    on_decode: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, float, float]:
    """Prompt ids (B, T) -> ((B, T + n) tokens, prefill seconds, decode seconds). The prefill
    is one forward over the prompt; each later token one forward over one token (KV cache).
    ``on_decode`` is called between the two phases (counters are split there)."""
    B, T = ids.shape
    if T < 1 or max_new_tokens < 1:
        raise ValueError("decode: need a non-empty prompt and max_new_tokens >= 1")
    if T + max_new_tokens > model.config.max_seq_len:
        raise ValueError(
            f"prompt ({T}) + max_new_tokens ({max_new_tokens}) exceeds the "
            f"model's max_seq_len={model.config.max_seq_len}"
        )
    sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    cache = KVCache.for_model(model, batch_size=B, max_len=T + max_new_tokens)
    tokens = torch.empty(B, T + max_new_tokens, dtype=torch.long)
    tokens[:, :T] = ids
    start = time.perf_counter()
    logits = model(ids, cache=cache)[:, -1]
    prefill = time.perf_counter() - start
    if on_decode is not None:
        on_decode()
    start = time.perf_counter()
    for step in range(max_new_tokens):
        tokens[:, T + step] = sample_next(logits, **sampling)
        if step + 1 < max_new_tokens:
            logits = model(tokens[:, T + step : T + step + 1], cache=cache)[:, -1]
    return tokens, prefill, time.perf_counter() - start


def shell_model(config: LlamaConfig, state: dict[str, torch.Tensor], ffns: Sequence[nn.Module]):
    """A ``Llama`` whose non-FFN weights are ``state`` and whose FFNs are ``ffns``, built on the
    meta device so the dense FFN weights are never allocated."""
    with torch.device("meta"):
        model = Llama(config)
    for layer, ffn in zip(model.layers, ffns, strict=True):
        layer.mlp = ffn
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected or [k for k in missing if ".mlp." not in k and k != "lm_head.weight"]:
        raise ValueError(
            f"non-FFN weights do not match the config: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    if config.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    model.rotary_emb = RotaryEmbedding(config.head_dim, config.max_seq_len, config.rope_theta)
    return model.eval()


def as_ids(prompt: str | torch.Tensor | Sequence[int]) -> torch.Tensor:
    if isinstance(prompt, str):
        ids = ByteTokenizer().encode(prompt)
    elif isinstance(prompt, torch.Tensor):
        if prompt.dim() != 2:
            raise ValueError(f"prompt tensor must be (B, T) token ids, got {tuple(prompt.shape)}")
        return prompt.long()
    else:
        ids = list(prompt)
    if not ids:
        raise ValueError("prompt is empty: give at least one token")
    return torch.tensor([ids], dtype=torch.long)


def finish(tokens: torch.Tensor, prompt, n_prompt: int):
    """generate()'s return value for the prompt's type (see ``PowerInferEngine.generate``)."""
    if isinstance(prompt, str):
        return ByteTokenizer().decode(tokens[0, n_prompt:])
    if isinstance(prompt, torch.Tensor):
        return tokens
    return tokens[0, n_prompt:].tolist()


# ---------------------------------------------------------------------------------------------


class InMemoryDense:
    """The model with every weight in memory, decoded by ``decode`` (the reference)."""

    def __init__(self, model: Llama, *, threads: int | None = 1):
        self.model, self.threads = model.float().eval(), threads
        self.stats: dict[str, float] = {}
        b = model.layers[0].mlp.gate_proj.weight
        self.ffn_bytes = 3 * b.numel() * 4 * len(model.layers)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, threads: int | None = 1) -> InMemoryDense:
        """Rebuild the dense model of an engine folder (every bundle read into memory)."""
        _, config, state = load_engine_folder(path)
        with BundleFile(Path(path) / FILES["bundles"]) as bundles:
            for layer in range(config.n_layers):
                w = bundles.read_layer(layer)  # (ffn, 3, dim) in neuron-id order
                state[f"layers.{layer}.mlp.gate_proj.weight"] = w[:, 0].contiguous()
                state[f"layers.{layer}.mlp.up_proj.weight"] = w[:, 1].contiguous()
                state[f"layers.{layer}.mlp.down_proj.weight"] = w[:, 2].t().contiguous()
        model = Llama(config)
        model.load_state_dict(state, strict=not config.tie_embeddings)
        return cls(model, threads=threads)

    def generate(self, prompt, *, max_new_tokens: int, **sampling):
        ids = as_ids(prompt)
        with threads_ctx(self.threads):
            tokens, prefill_s, decode_s = decode(
                self.model, ids, max_new_tokens=max_new_tokens, **_sampling(sampling)
            )
        steps = max(max_new_tokens - 1, 1) * ids.shape[0]
        self.stats = dict(
            decode_tokens=steps,
            decode_seconds=decode_s,
            prefill_seconds=prefill_s,
            tokens_per_s=steps / max(decode_s, 1e-9),
            bytes_read_per_token=0.0,
            resident_ffn_bytes=self.ffn_bytes,
        )
        return finish(tokens, prompt, ids.shape[1])

    def close(self) -> None:
        pass

    def __enter__(self) -> InMemoryDense:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MmapFFN(nn.Module):
    def __init__(self, owner: MmapDense, layer: int):
        super().__init__()
        self._owner, self.layer = [owner], layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        owner = self._owner[0]
        y = ffn_rows(x.reshape(-1, x.shape[-1]), owner.views[self.layer]).view_as(x)
        owner.evict(self.layer)
        return y


# DEVIATION: our own llama.cpp-style mmap decode of the same file, not llama.cpp / MLC-LLM
class MmapDense:
    """Dense decode with the FFN memory-mapped from the bundle file under a memory budget (see
    the module docstring for what stays resident and why that is generous)."""

    def __init__(
        self,
        path: str | Path,
        *,
        memory_budget: str | float | int = "25%",
        threads: int | None = 1,
        file: str | Path | None = None,
    ):
        """``file``: map this copy of the folder's bundle file instead (so that an engine
        reading the original in the same process does not share its page cache)."""
        meta, config, state = load_engine_folder(path)
        self.bundles = BundleFile(file or Path(path) / FILES["bundles"])
        b = self.bundles
        self.budget_bytes = parse_budget(memory_budget, b.ffn_bytes)
        self.threads = threads
        self.fd = os.open(b.path, os.O_RDONLY)
        self.mm = mmap.mmap(self.fd, 0, access=mmap.ACCESS_COPY)  # private: writable views
        self.views = [
            torch.frombuffer(
                self.mm, dtype=torch.float32, offset=b.offset(layer), count=b.layer_bytes // 4
            ).view(b.ffn_hidden, 3, b.dim)
            for layer in range(b.n_layers)
        ]
        # the resident prefix: the first budget bytes of FFN data, layer 0 first, whole pages
        left, self.keep = min(self.budget_bytes, b.ffn_bytes), []
        for _ in range(b.n_layers):
            keep = b.layer_bytes if left >= b.layer_bytes else left // PAGE * PAGE
            self.keep.append(keep)
            left -= min(left, b.layer_bytes)
        self.resident_ffn_bytes = sum(self.keep)
        self.model = shell_model(config, state, [MmapFFN(self, i) for i in range(b.n_layers)])
        self.stats: dict[str, float] = {}

    def evict(self, layer: int) -> None:
        """Drop the non-resident part of ``layer`` from this mapping and the page cache."""
        start = self.bundles.offset(layer) + self.keep[layer]
        end = self.bundles.offset(layer) + self.bundles.layer_bytes
        length = (end + PAGE - 1) // PAGE * PAGE - start
        if self.keep[layer] < self.bundles.layer_bytes and length > 0:
            self.mm.madvise(mmap.MADV_DONTNEED, start, length)
            os.posix_fadvise(self.fd, start, length, os.POSIX_FADV_DONTNEED)

    def warm(self) -> None:
        """Fault the resident prefix in (outside the timed decode), evict the rest."""
        for layer, view in enumerate(self.views):
            view.sum()
            self.evict(layer)

    def generate(self, prompt, *, max_new_tokens: int, **sampling):
        ids = as_ids(prompt)
        self.warm()
        marks = {}
        with threads_ctx(self.threads):
            tokens, prefill_s, decode_s = decode(
                self.model,
                ids,
                max_new_tokens=max_new_tokens,
                **_sampling(sampling),
                on_decode=lambda: marks.setdefault("decode", proc_read_bytes() or 0),
            )
        steps = max(max_new_tokens - 1, 1) * ids.shape[0]
        block = (proc_read_bytes() or 0) - marks["decode"]
        touched = self.bundles.ffn_bytes - self.resident_ffn_bytes  # what each token faults in
        self.stats = dict(
            decode_tokens=steps,
            decode_seconds=decode_s,
            prefill_seconds=prefill_s,
            tokens_per_s=steps / max(decode_s, 1e-9),
            bytes_read_per_token=float(touched),
            block_read_bytes_per_token=block / steps,
            budget_bytes=self.budget_bytes,
            resident_ffn_bytes=self.resident_ffn_bytes,
            ffn_bytes=self.bundles.ffn_bytes,
        )
        cached = page_cache_bytes(self.bundles.path)
        if cached is not None:
            self.stats["page_cache_bytes"] = cached
        return finish(tokens, prompt, ids.shape[1])

    def close(self) -> None:
        if self.mm is not None:
            self.views = []  # the views export the map's buffer: release them first
            self.model = None
            self.mm.close()
            os.close(self.fd)
            self.bundles.close()
            self.mm = None

    def __enter__(self) -> MmapDense:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def threads_ctx(n: int | None):
    import contextlib

    return contextlib.nullcontext() if n is None else torch_threads(n)


def _sampling(kw: dict) -> dict:
    seed = kw.pop("seed", 0)
    return dict(kw, generator=torch.Generator().manual_seed(seed))
