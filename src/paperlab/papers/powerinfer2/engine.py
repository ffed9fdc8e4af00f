"""The PowerInfer-2 engine: attention in memory, FFN neurons from disk under a memory budget.

    engine = PowerInferEngine.from_pretrained("out/pi2", memory_budget="25%")
    with engine:
        text = engine.generate("def main(", max_new_tokens=64)
    engine.stats   # tokens/s, bytes read per token, cache hit rate, I/O wait share, memory

What is where (Sec. 3.1 / 4.2): attention, norms, embeddings and the per-layer activation
predictors are resident; FFN neurons live in the bundle file (``layout.py``) and in the
segmented neuron cache (``cache.py``): the planner's hot neurons pinned, cold ones in LRU
slots, both inside the budget. Per layer and token (Sec. 4.1.2, CPU-centric decode):

1. the layer's predictor turns the FFN input into the set of neurons it expects to be active;
2. the cache splits that set into hot rows, cached cold slots and misses;
3. the misses get slots (evicting LRU cold neurons) and are handed to the reader thread in
   clusters, sorted by file position so contiguous neurons become one read (Sec. 4.3/4.4);
4. meanwhile the main thread computes the resident neurons' contribution, then each cluster's
   as it arrives (Sec. 4.4: I/O overlapped with computation at cluster granularity).

Polymorphic engine (Sec. 4.1): a forward over many tokens (the prompt) skips the predictor and
computes every neuron of the layer densely, reading the non-resident ones in large sequential
reads (hot-first order keeps cold neurons contiguous); one token at a time uses the sparse path.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path

import torch
from torch import nn

from paperlab.core.llama import Llama, LlamaConfig
from paperlab.papers.powerinfer2.baseline import (
    as_ids,
    decode,
    ffn_rows,
    finish,
    shell_model,
    threads_ctx,
)
from paperlab.papers.powerinfer2.cache import ClusterReader, NeuronCache, parse_budget
from paperlab.papers.powerinfer2.layout import (
    FILES,
    BundleFile,
    load_engine_folder,
    page_cache_bytes,
    proc_read_bytes,
    write_engine_files,
)

Predictor = Callable[[torch.Tensor], torch.Tensor]  # x (N, dim) -> active mask (N, ffn) bool


def oracle_predictors(model: Llama) -> list[Predictor]:
    """The exact activation sets (``gate_proj(x) > 0``) from a dense model's gate weights: a
    reference for tests and ablations; it holds every gate row, outside any budget."""
    gates = [layer.mlp.gate_proj.weight.detach().float().clone() for layer in model.layers]
    return [lambda x, g=g: (x @ g.t()) > 0 for g in gates]


# ---------------------------------------------------------------------------------------------


class EngineFFN(nn.Module):
    """Stands in for ``layer.mlp`` inside the shell model; the engine does the work."""

    def __init__(self, engine: PowerInferEngine, layer: int):
        super().__init__()
        self._engine = [engine]  # a list: not registered as a submodule (no cycle in modules())
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._engine[0].ffn(self.layer, x)


class PowerInferEngine:
    def __init__(
        self,
        *,
        config: LlamaConfig,
        state: dict[str, torch.Tensor],
        bundles: BundleFile,
        hot: Sequence[torch.Tensor],
        budget_bytes: int,
        predictors: Sequence[Predictor],
        cluster_size: int = 16,
        io_threads: int = 4,
        max_gap: int = 8,
        pipeline: bool = True,
        polymorphic: bool = True,
        dense_hot: bool = True,
        threads: int | None = 1,
    ):
        if cluster_size < 1:
            raise ValueError(f"cluster_size={cluster_size} must be >= 1")
        if len(predictors) != bundles.n_layers:
            raise ValueError(f"{len(predictors)} predictors for {bundles.n_layers} layers")
        self.bundles, self.predictors = bundles, list(predictors)
        self.budget_bytes = budget_bytes
        self.cluster_size, self.polymorphic = cluster_size, polymorphic
        self.dense_hot = dense_hot
        self.threads = threads  # torch threads while generating (1: see README, 'threads')
        # the scratch buffer merged gaps are read into counts in the budget too (when the whole
        # FFN fits, every neuron is read once and gaps are not worth their memory)
        if budget_bytes >= bundles.ffn_bytes:
            max_gap = 0
        self.scratch_bytes = max_gap * bundles.bundle_bytes
        capacity = min(budget_bytes - self.scratch_bytes, bundles.ffn_bytes)
        if capacity < bundles.bundle_bytes:
            raise ValueError(
                f"memory budget {budget_bytes} B is too small: it must hold at "
                f"least {self.scratch_bytes + bundles.bundle_bytes} B"
            )
        self.cache = NeuronCache(
            capacity_bytes=capacity,
            bundle_bytes=bundles.bundle_bytes,
            dim=bundles.dim,
            ffn_hidden=bundles.ffn_hidden,
            hot=hot,
        )
        if self.cache.n_slots < 1 and self.cache.hot_bytes < bundles.ffn_bytes:
            raise ValueError(
                f"memory budget {budget_bytes} B leaves no cold-cache slot "
                f"(a bundle is {bundles.bundle_bytes} B); give a larger budget"
            )
        for layer, ids in enumerate(self.cache.hot_ids):  # Sec. 4.2: hot neurons preloaded
            self.cache.hot[layer] = bundles.read(layer, ids)
        self.load_bytes = bundles.bytes_read
        self.reader = ClusterReader(
            bundles, self.cache.slots, pipeline=pipeline, io_threads=io_threads, max_gap=max_gap
        )
        self.model = shell_model(config, state, [EngineFFN(self, i) for i in range(len(hot))])
        self.non_ffn_bytes = sum(v.numel() * v.element_size() for v in state.values())
        self._all = torch.arange(bundles.ffn_hidden)
        self.io_wait = 0.0
        self.active_neurons = 0
        self.stats: dict[str, float] = {}

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        memory_budget: str | float | int = "25%",
        hot_share: float = 0.5,
        predictors: Sequence[Predictor] | None = None,
        threshold: float | None = None,
        cluster_size: int = 16,
        io_threads: int = 4,
        max_gap: int = 8,
        pipeline: bool = True,
        polymorphic: bool = True,
        dense_hot: bool = True,
        threads: int | None = 1,
        verify: bool = True,
    ) -> PowerInferEngine:
        """Open an engine folder (``convert``'s output). The budget counts FFN bundle bytes
        (hot segment + cold slots); ``hot_share`` of it goes to the hot segment, planned from
        the stored activation profile. ``predictors`` overrides the trained ones (e.g.
        ``oracle_predictors(model)``). ``verify`` checks the bundle file's CRCs once."""
        from paperlab.papers.powerinfer2.planner import plan_hot_neurons
        from paperlab.papers.powerinfer2.predictor import load_predictors
        from paperlab.papers.powerinfer2.profile import ActivationProfile

        path = Path(path)
        meta, config, state = load_engine_folder(path)
        bundles = BundleFile(path / FILES["bundles"])
        try:
            budget = parse_budget(memory_budget, bundles.ffn_bytes)
            if verify:
                bundles.verify()
            profile = ActivationProfile.load(path / FILES["profile"])
            plan = plan_hot_neurons(
                profile,
                budget_bytes=min(budget, bundles.ffn_bytes),
                bundle_bytes=bundles.bundle_bytes,
                hot_share=hot_share,
            )
            if predictors is None:
                if threshold is None:  # the one the predictors were measured at in convert
                    threshold = meta.get("convert", {}).get("threshold", 0.5)
                nets = load_predictors(path / FILES["predictors"])
                predictors = [lambda x, p=p, t=threshold: p.predict(x, t) for p in nets]
                predictor_bytes = sum(p.numel() * 4 for n in nets for p in n.parameters())
            else:
                predictor_bytes = 0
            engine = cls(
                config=config,
                state=state,
                bundles=bundles,
                hot=plan.hot,
                budget_bytes=budget,
                predictors=predictors,
                cluster_size=cluster_size,
                io_threads=io_threads,
                max_gap=max_gap,
                pipeline=pipeline,
                polymorphic=polymorphic,
                dense_hot=dense_hot,
                threads=threads,
            )
        except BaseException:
            bundles.close()
            raise
        engine.plan, engine.predictor_bytes, engine.meta = plan, predictor_bytes, meta
        return engine

    # -- the FFN of one layer ------------------------------------------------------------------

    def ffn(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])  # (N, dim)
        # DEVIATION: the dense prompt path runs on the CPU (Sec. 4.1.1 runs it on the NPU)
        if x2.shape[0] > 1 and self.polymorphic:  # Sec. 4.1.1: prefill computes every neuron
            active = self._all
        else:  # Sec. 4.1.2: decode computes the predicted-active neurons only
            active = self.predictors[layer](x2).any(0).nonzero().squeeze(1)
        self.active_neurons += len(active)
        cache = self.cache
        cache.begin_step()
        hot_rows, hit_slots, missing = cache.lookup(layer, active)
        jobs, missing = self._submit(layer, missing)  # reads start now ...
        hot = cache.hot[layer]  # ... while the resident neurons compute
        y = None
        if self.dense_hot and len(hot):
            # DEVIATION: every hot neuron is computed, predicted active or not (Sec. 4.1 sends
            # densely activated clusters to dense compute): on a CPU in PyTorch, gathering
            # the active hot rows costs more than the few inactive ones; an inactive neuron
            # adds exactly 0, so this can only bring the output closer to the dense model's
            y = ffn_rows(x2, hot)
        elif len(hot_rows):
            y = ffn_rows(x2, hot if len(hot_rows) == len(hot) else hot[hot_rows])
        if len(hit_slots):
            y = _add(y, ffn_rows(x2, cache.slots[hit_slots]))
        y = _add(y, self._drain(jobs, x2))
        while len(missing):  # the cold segment could not hold all misses at once: waves
            cache.begin_step()
            jobs, missing = self._submit(layer, missing)
            y = _add(y, self._drain(jobs, x2))
        return (x2.new_zeros(x2.shape) if y is None else y).view_as(x)

    def _submit(self, layer: int, missing: torch.Tensor) -> tuple[list, torch.Tensor]:
        slots = self.cache.admit(layer, missing)
        k = len(slots)
        if k == 0:
            return [], missing
        positions, order = self.bundles.position[layer][missing[:k]].sort()
        positions, slots = positions.numpy(), slots[order]
        # clusters of >= cluster_size neurons, at most two per reader thread in flight
        size = max(self.cluster_size, -(-k // (2 * self.reader.io_threads)))
        jobs = [
            self.reader.submit(layer, positions[i : i + size], slots[i : i + size])
            for i in range(0, k, size)
        ]
        return jobs, missing[k:]

    def _drain(self, jobs: list, x2: torch.Tensor) -> torch.Tensor | None:
        """Compute the clusters as they land (Sec. 4.4): wait for the next one, then compute
        it together with every later cluster that has landed meanwhile (one gather and three
        matmuls per batch of landed clusters, not per cluster: at this model size a
        cluster's compute is a few microseconds and the per-call overhead dominates)."""
        y, i = None, 0
        try:
            while i < len(jobs):
                self.io_wait += jobs[i].wait()
                j = i + 1
                while j < len(jobs) and jobs[j].done.is_set():
                    jobs[j].wait()  # raises a reader's error
                    j += 1
                batch = jobs[i:j]
                slots = batch[0].slots if len(batch) == 1 else torch.cat([b.slots for b in batch])
                y = _add(y, ffn_rows(x2, self.cache.slots[slots]))
                i = j
        except BaseException:
            for j in jobs[i:]:  # their slots hold nothing valid
                j.done.wait()
                self.cache.forget(j.slots)
            raise
        return y

    # -- generation ----------------------------------------------------------------------------

    def generate(
        self,
        prompt: str | torch.Tensor | Sequence[int],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
    ) -> str | torch.Tensor | list[int]:
        """Decode ``max_new_tokens`` after ``prompt``: a str (bytes; returns the new text), a
        (B, T) tensor (returns (B, T + n) tokens) or a list of ids (returns the new ids).
        Fills ``self.stats`` for the run (decode figures exclude the prompt's forward)."""
        ids = as_ids(prompt)
        marks: dict[str, dict] = {}
        sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p)
        with threads_ctx(self.threads):
            self.reader.start()
            try:
                before = self._counters()
                tokens, prefill_s, decode_s = decode(
                    self.model,
                    ids,
                    max_new_tokens=max_new_tokens,
                    **sampling,
                    generator=torch.Generator().manual_seed(seed),
                    on_decode=lambda: marks.setdefault("decode", self._counters()),
                )
            finally:
                self.reader.close()
        after = self._counters()
        self._fill_stats(
            before, marks["decode"], after, ids.shape, max_new_tokens, prefill_s, decode_s
        )
        return finish(tokens, prompt, ids.shape[1])

    def _counters(self) -> dict[str, float]:
        c = dict(
            self.cache.counters(),
            bytes=self.bundles.bytes_read,
            reads=self.bundles.reads,
            io_wait=self.io_wait,
            active=self.active_neurons,
            block_read=proc_read_bytes() or 0,
        )
        return {k: float(v) for k, v in c.items()}

    def _fill_stats(self, c0, c1, c2, shape, new_tokens, prefill_s, decode_s) -> None:
        d = {k: c2[k] - c1[k] for k in c2}  # decode phase
        p = {k: c1[k] - c0[k] for k in c1}  # prefill phase
        B, T = shape
        steps = max(new_tokens - 1, 1) * B  # decode forwards (the first new token is prefill's)
        active = max(d["active"], 1.0)
        cold = max(d["cold_hits"] + d["misses"], 1.0)
        b = self.bundles
        self.stats = {
            "decode_tokens": steps,
            "decode_seconds": decode_s,
            "tokens_per_s": steps / max(decode_s, 1e-9),
            "bytes_read_per_token": d["bytes"] / steps,
            "block_read_bytes_per_token": d["block_read"] / steps,  # /proc/self/io (kernel)
            "reads_per_token": d["reads"] / steps,
            "hit_rate": (d["hot_hits"] + d["cold_hits"]) / active,  # active neurons resident
            "cold_hit_rate": d["cold_hits"] / cold,
            "io_wait_share": d["io_wait"] / max(decode_s, 1e-9),
            "active_share": d["active"] / (steps * b.n_layers * b.ffn_hidden),
            "prefill_tokens": B * T,
            "prefill_seconds": prefill_s,
            "prefill_bytes": p["bytes"],
            "budget_bytes": self.budget_bytes,
            "ffn_bytes": b.ffn_bytes,
            "hot_bytes": self.cache.hot_bytes,
            "cold_cache_bytes": self.cache.allocated_bytes - self.cache.hot_bytes,
            "peak_resident_ffn_bytes": self.cache.peak_resident_bytes + self.scratch_bytes,
            "non_ffn_bytes": self.non_ffn_bytes,
            "predictor_bytes": getattr(self, "predictor_bytes", 0),
        }
        cached = page_cache_bytes(b.path)
        if cached is not None:
            self.stats["page_cache_bytes"] = cached

    def close(self) -> None:
        self.reader.close()
        self.bundles.close()

    def __enter__(self) -> PowerInferEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _add(y: torch.Tensor | None, z: torch.Tensor | None) -> torch.Tensor | None:
    """y + z where None stands for zeros (one allocation fewer per partial sum)."""
    if y is None:
        return z
    return y if z is None else y.add_(z)


# ---------------------------------------------------------------------------------------------
# convert: a Llama checkpoint -> an engine folder


@dataclasses.dataclass
class ConvertConfig:
    """Offline work of ``convert``: the activation profile and the predictors' training."""

    profile_batches: int = 16  # train-split batches the profile counts activations over
    batch_size: int = 8
    seq_len: int = 128
    predictor_rank: int = 64
    predictor_steps: int = 300
    predictor_batches: int = 16  # train-split batches of recorded activations to train on
    val_batches: int = 4  # validation-split batches for the predictors' recall / precision
    pos_weight: float = 2.0  # BCE weight of active targets (> 1 favours recall)
    threshold: float = 0.5  # sigmoid threshold of "predicted active" (stored, used by default)
    seed: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name not in ("seed", "threshold", "pos_weight") and value < 1:
                raise ValueError(f"ConvertConfig.{f.name}={value} must be >= 1")
        if not 0 < self.threshold < 1 or not self.pos_weight > 0:
            raise ValueError("ConvertConfig: threshold must be in (0, 1) and pos_weight > 0")


def corpus_windows(
    n: int, *, batch_size: int, seq_len: int, seed: int, split: str = "train"
) -> list[torch.Tensor]:
    """The inputs x (batch_size, seq_len) of the first ``n`` batches of the core corpus stream
    (``paperlab.core.lm.corpus_batches``) of a split, seeded."""
    from paperlab.core.lm import corpus_batches

    return [x for x, _ in islice(corpus_batches(split, batch_size, seq_len, seed), n)]


def convert(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    config: ConvertConfig | None = None,
    model: Llama | None = None,
    progress: bool = False,
) -> Path:
    """A ``Llama.save_pretrained`` folder (or ``model`` itself) -> an engine folder: non-FFN
    weights (safetensors), the bundle file in hot-first order, the activation profile and the
    trained predictors. Written to a temp folder next to ``out_dir``, then renamed."""
    from paperlab.papers.powerinfer2.planner import hot_first_order
    from paperlab.papers.powerinfer2.predictor import save_predictors, train_predictors
    from paperlab.papers.powerinfer2.profile import profile_activations

    cfg = config or ConvertConfig()
    out = Path(out_dir)
    if model is None:
        model = Llama.from_pretrained(model_dir)
    if model.config.hidden_act != "relu":
        raise ValueError(
            f"{model_dir}: the FFN activation is {model.config.hidden_act!r}; the "
            "engine needs a ReLU-family model (hidden_act='relu')"
        )
    model = model.float().eval()
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        batches = corpus_windows(
            cfg.profile_batches, batch_size=cfg.batch_size, seq_len=cfg.seq_len, seed=cfg.seed
        )
        profile = profile_activations(model, batches, progress=progress)
        profile.save(tmp / FILES["profile"])
        train = corpus_windows(
            cfg.predictor_batches, batch_size=cfg.batch_size, seq_len=cfg.seq_len, seed=cfg.seed + 1
        )
        val = corpus_windows(
            cfg.val_batches,
            batch_size=cfg.batch_size,
            seq_len=cfg.seq_len,
            seed=cfg.seed + 2,
            split="val",
        )
        nets, metrics = train_predictors(
            model,
            train,
            rank=cfg.predictor_rank,
            steps=cfg.predictor_steps,
            seed=cfg.seed,
            progress=progress,
            val_batches=val,
            pos_weight=cfg.pos_weight,
            threshold=cfg.threshold,
        )
        save_predictors(nets, tmp / FILES["predictors"])
        meta = dict(
            convert=dataclasses.asdict(cfg),
            predictor_metrics=metrics,
            sparsity=profile.sparsity(),
            share_covering_80=profile.share_covering(0.8),
        )
        write_engine_files(model, tmp, order=hot_first_order(profile), meta=meta)
        if out.exists():
            if not (out / FILES["config"]).is_file():
                raise ValueError(
                    f"{out} exists and is not an engine folder; choose another OUT_DIR"
                )
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
