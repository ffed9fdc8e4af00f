"""The segmented neuron cache (PowerInfer-2 Sec. 4.2, "in-memory neuron cache").

Two segments share one byte budget, both at neuron (bundle) granularity:
- the **hot segment**: the planner's hot neurons of every layer, loaded at start-up and pinned
  (never evicted): they are active on most tokens, so keeping them is always worth it;
- the **cold segment**: a fixed pool of ``n_slots`` bundle slots holding recently used cold
  neurons, evicted least-recently-used first. The paper argues for neuron (not cluster or
  matrix) granularity here: once the hot neurons are removed, the remaining neurons are rarely
  co-activated, so caching groups of them wastes memory on neighbours that are not needed.

The slots are one preallocated ``(n_slots, 3, dim)`` tensor: reads land directly in them, so
the engine's FFN memory is ``hot bytes + n_slots * bundle_bytes`` <= capacity at all times, by
construction. ``begin_step`` marks the start of one layer's work: slots the step looks up or
admits are protected from eviction until the next ``begin_step`` (they are being computed on).
"""

from __future__ import annotations

import math
import queue
import re
import threading
import time
from collections.abc import Sequence

import torch

_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_budget(memory_budget: str | float | int, ffn_bytes: int) -> int:
    """Bytes of FFN weights the engine may hold: "25%" or 0.25 = that share of the model's FFN
    weight bytes; an int (or "48MB", "64MiB") = bytes. Anything else -> ValueError."""
    hint = (
        "expected a share of the FFN weights such as '25%' or 0.25, or bytes such as "
        "50000000 or '48MB'"
    )
    value = memory_budget
    if isinstance(value, bool):
        raise ValueError(f"memory_budget={value!r}: {hint}")
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)(%|b|kb|mb|gb|kib|mib|gib)?", text)
        if not m:
            raise ValueError(f"memory_budget={memory_budget!r}: {hint}")
        number, unit = float(m.group(1)), m.group(2)
        if unit == "%":
            value = number / 100
        elif unit is not None:
            value = int(number * _UNITS[unit])
        else:
            value = int(number) if number.is_integer() and number > 1 else number
    if isinstance(value, float):
        if not (0 < value <= 1 and math.isfinite(value)):
            raise ValueError(
                f"memory_budget={memory_budget!r}: a share must be in (0, 1] (0.25 = 25%)"
            )
        return max(1, int(value * ffn_bytes))
    if isinstance(value, int) and value > 0:
        return value
    raise ValueError(f"memory_budget={memory_budget!r}: {hint}")


FREE, PROTECTED = -1, 2**62  # last_used of a free slot; sort key of a protected one


# DEVIATION: the hot segment is filled once from the offline profile and never adapts (Sec. 4.2)
class NeuronCache:
    def __init__(
        self,
        *,
        capacity_bytes: int,
        bundle_bytes: int,
        dim: int,
        ffn_hidden: int,
        hot: Sequence[torch.Tensor],
    ):
        """``hot``: per layer the neuron ids of the hot segment. The cold segment gets what the
        hot segment leaves of ``capacity_bytes``, in whole bundles."""
        self.capacity_bytes, self.bundle_bytes = int(capacity_bytes), int(bundle_bytes)
        self.n_layers, self.ffn_hidden = len(hot), ffn_hidden
        self.hot_ids = [torch.as_tensor(h, dtype=torch.long).sort().values for h in hot]
        self.hot_bytes = sum(len(h) for h in self.hot_ids) * self.bundle_bytes
        free = self.capacity_bytes - self.hot_bytes
        if free < 0:
            raise ValueError(
                f"hot segment ({self.hot_bytes} B) exceeds the cache capacity "
                f"({self.capacity_bytes} B)"
            )
        self.n_slots = free // self.bundle_bytes
        # hot_row[l, i] = row of neuron i in self.hot[l], or -1; slot_of[l, i] = slot or -1
        self.hot_row = torch.full((self.n_layers, ffn_hidden), -1, dtype=torch.long)
        for layer, ids in enumerate(self.hot_ids):
            self.hot_row[layer, ids] = torch.arange(len(ids))
        self.hot = [torch.zeros(len(h), 3, dim) for h in self.hot_ids]  # filled by the engine
        self.slots = torch.zeros(self.n_slots, 3, dim)
        self.slot_of = torch.full((self.n_layers, ffn_hidden), -1, dtype=torch.long)
        # per slot: its (layer, neuron), and when it was last used (FREE: never; the LRU order)
        self.owner = torch.full((self.n_slots, 2), -1, dtype=torch.long)
        self.last_used = torch.full((self.n_slots,), FREE, dtype=torch.long)
        self.clock = 0  # one tick per step; slots used in the current step are protected
        self.occupied = 0
        self.hot_hits = self.cold_hits = self.misses = self.evictions = 0
        self.peak_resident_bytes = self.resident_bytes

    @property
    def resident_bytes(self) -> int:
        """FFN bytes held right now: hot segment + occupied cold slots (<= allocated)."""
        return self.hot_bytes + self.occupied * self.bundle_bytes

    @property
    def allocated_bytes(self) -> int:
        """Bytes the two segments occupy in memory (hot tensors + the whole slot pool)."""
        return self.hot_bytes + self.n_slots * self.bundle_bytes

    def begin_step(self) -> None:
        self.clock += 1

    def lookup(self, layer: int, neurons: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Split active ``neurons`` of ``layer`` into (hot rows, cold slots hit, missing ids);
        hits become most recently used and protected for this step."""
        rows = self.hot_row[layer, neurons]
        is_hot = rows >= 0
        rest = neurons[~is_hot]
        slots = self.slot_of[layer, rest]
        hit = slots >= 0
        hit_slots = slots[hit]
        self.last_used[hit_slots] = self.clock
        self.hot_hits += int(is_hot.sum())
        self.cold_hits += len(hit_slots)
        self.misses += len(rest) - len(hit_slots)
        return rows[is_hot], hit_slots, rest[~hit]

    def evictable(self) -> int:
        """Slots that ``admit`` can hand out now (free + not used in the current step)."""
        return self.n_slots - int((self.last_used == self.clock).sum())

    def admit(self, layer: int, neurons: torch.Tensor) -> torch.Tensor:
        """Give the first k = min(len(neurons), evictable()) ``neurons`` of ``layer`` a slot
        each (free ones first, then the least recently used), register them as cached and
        protected; return their k slots. The caller fills the slots (or calls ``forget``)."""
        k = min(len(neurons), self.evictable())
        if k == 0:
            return torch.empty(0, dtype=torch.long)
        age = self.last_used.masked_fill(self.last_used == self.clock, PROTECTED)
        slots = age.topk(k, largest=False).indices  # FREE (-1) sorts before any tick
        old = self.owner[slots]
        was = old[:, 0] >= 0
        self.slot_of[old[was, 0], old[was, 1]] = -1  # evicted
        self.evictions += int(was.sum())
        self.occupied += k - int(was.sum())
        new = neurons[:k]
        self.owner[slots, 0], self.owner[slots, 1] = layer, new
        self.slot_of[layer, new] = slots
        self.last_used[slots] = self.clock
        self.peak_resident_bytes = max(self.peak_resident_bytes, self.resident_bytes)
        return slots

    def forget(self, slots: torch.Tensor) -> None:
        """Release ``slots`` whose contents never arrived (a failed read)."""
        old = self.owner[slots]
        was = old[:, 0] >= 0
        self.slot_of[old[was, 0], old[was, 1]] = -1
        self.occupied -= int(was.sum())
        self.owner[slots] = -1
        self.last_used[slots] = FREE

    def counters(self) -> dict[str, int]:
        return dict(
            hot_hits=self.hot_hits,
            cold_hits=self.cold_hits,
            misses=self.misses,
            evictions=self.evictions,
        )


# ---------------------------------------------------------------------------------------------
# The reader thread that fills the cache's slots (Sec. 4.4, "neuron-cluster-level pipeline")


class ReadJob:
    """One neuron cluster to read: sorted file ``positions`` of ``layer`` into ``slots``."""

    def __init__(self, layer: int, positions, slots: torch.Tensor):
        self.layer, self.positions, self.slots = layer, positions, slots
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.nbytes = 0

    def wait(self) -> float:
        """Block until the cluster is in its slots; return the seconds spent blocked."""
        if self.done.is_set():
            seconds = 0.0
        else:
            start = time.perf_counter()
            self.done.wait()
            seconds = time.perf_counter() - start
        if self.error is not None:
            raise self.error
        return seconds


# DEVIATION: several reader threads stand in for the paper's I/O queue depth on UFS (Sec. 4.4)
class ClusterReader:
    """Queue-fed reader threads: the engine submits the clusters a layer misses, computes the
    resident neurons meanwhile, then each cluster as it lands (Sec. 4.4: storage reads overlap
    computation at neuron-cluster granularity). ``io_threads`` readers keep that many reads in
    flight (flash and virtio disks serve concurrent requests much faster than one at a time);
    ``pipeline=False`` reads on the caller's thread instead (the ablation). The threads are not
    daemons: ``close()`` (or the context manager) stops and joins them; the engine starts them
    per ``generate`` and closes them in a ``finally``, so an exception mid-generation cannot
    leave one running."""

    def __init__(
        self,
        bundles,
        slots: torch.Tensor,
        *,
        pipeline: bool = True,
        io_threads: int = 4,
        max_gap: int = 0,
    ):
        if io_threads < 1 or max_gap < 0:
            raise ValueError(f"io_threads={io_threads} must be >= 1 and max_gap={max_gap} >= 0")
        self.bundles, self.pipeline = bundles, pipeline
        self.io_threads, self.max_gap = io_threads, max_gap
        self._slots = slots.numpy()  # shares memory with the cache's slot tensor
        self._views = [memoryview(row) for row in self._slots]  # one per slot, made once
        self._queue: queue.Queue[ReadJob | None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.pipeline and not self._threads:
            for i in range(self.io_threads):
                t = threading.Thread(
                    target=_serve,
                    args=(self._queue, self._run),
                    name=f"powerinfer2-reader-{i}",
                    daemon=False,
                )
                t.start()
                self._threads.append(t)

    def submit(self, layer: int, positions, slots: torch.Tensor) -> ReadJob:
        job = ReadJob(layer, positions, slots)
        if not self._threads:  # synchronous: read now, on this thread
            self._run(job)
        else:
            self._queue.put(job)
        return job

    def _run(self, job: ReadJob) -> None:
        try:
            views = self._views
            buffers = [views[s] for s in job.slots.tolist()]
            job.nbytes = self.bundles.read_into(
                job.layer, job.positions, buffers, max_gap=self.max_gap
            )
        except BaseException as e:  # handed to the waiting thread by ReadJob.wait
            job.error = e
        finally:
            job.done.set()

    def close(self) -> None:
        """Stop the threads after the queued jobs; join them. Safe to call twice."""
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()
        self._threads = []

    def __enter__(self) -> ClusterReader:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(jobs: queue.Queue, run) -> None:
    while (job := jobs.get()) is not None:
        run(job)
