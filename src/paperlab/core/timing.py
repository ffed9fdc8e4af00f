"""Side-by-side wall-clock timing: every method on every prompt, interleaved, medians.

Speed claims and benchmarks compare methods in one process on the same inputs. Interleaving
(each repetition runs every prompt through every method, in an order that rotates from one
repetition to the next) spreads slow moments of a shared machine over all methods instead of
charging them to whichever ran last.

    timings = time_interleaved({"plain": f, "fast": g}, prompts, reps=5)
    timings.median("plain") / timings.median("fast")      # the speedup
    timings.outputs["fast"][0]                            # g(prompts[0]) of the last repetition
    timings.ratios("plain", "fast")                       # per repetition: the spread

A shared machine can still flip a speed claim: other programs take the cores one method needs
more than the other. :class:`LoadMonitor` samples, while the timing runs, how many threads of
*other* programs are runnable (Linux ``/proc``; this process and its children are excluded, so
a server under test does not count); ``timing_guard`` in ``core.criteria`` turns a speed verdict
into ``inconclusive`` when that load was too high to call it.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm


@dataclass
class Timings:
    seconds: dict[str, list[float]]  # per method: summed seconds over prompts, per repetition
    outputs: dict[str, list[Any]]  # per method: its return value per prompt (last repetition)
    other_load_per_core: float = float("nan")  # LoadMonitor over the timed repetitions

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratio(self, slower: str, faster: str) -> float:
        """median(slower) / median(faster): how many times faster `faster` is."""
        return self.median(slower) / self.median(faster)

    def ratios(self, slower: str, faster: str) -> list[float]:
        """slower / faster per repetition (paired: the same repetition's inputs): the spread."""
        return [a / b for a, b in zip(self.seconds[slower], self.seconds[faster], strict=True)]


def _descendants(root: int) -> set[int]:
    """``root`` and every process below it (from /proc/*/stat parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def _running_tasks(pid: int) -> int:
    """Threads of process ``pid`` in state R (0 if it is gone)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    running = 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        end = stat.rindex(b")")
        running += stat[end + 2 : end + 3] == b"R"
    return running


def other_running_threads(ours: set[int] | None = None) -> int | None:
    """Runnable threads of programs other than this one and its children (``ours``: those
    process ids, found now if not given), now: the kernel's count of runnable threads
    (/proc/loadavg) minus ours. None where /proc is not there (not Linux)."""
    try:
        with open("/proc/loadavg") as f:
            total = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    ours = _descendants(os.getpid()) if ours is None else ours
    return max(0, total - sum(_running_tasks(pid) for pid in ours))


_LOADS: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("loads", default=None)


@contextlib.contextmanager
def collect_timing_loads() -> Iterator[list[float]]:
    """Collect the other-load figure of every :func:`time_interleaved` call in the block (the
    runner uses it to judge a timed claim by the load during its timings only)."""
    loads: list[float] = []
    token = _LOADS.set(loads)
    try:
        yield loads
    finally:
        _LOADS.reset(token)


class LoadMonitor:
    """Samples :func:`other_running_threads` every ``interval`` seconds in a background thread
    while the ``with`` block runs. ``load_per_core``: their mean over the cores (NaN if no
    sample, or not Linux): about 1.0 means another program kept every core busy.

        with LoadMonitor() as load:
            timings = time_interleaved(...)
        measured["other_load_per_core"] = load.load_per_core
    """

    def __init__(self, interval: float = 0.25):
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        ours = _descendants(os.getpid()) if os.path.isdir("/proc/self/task") else set()
        while True:
            n = other_running_threads(ours)
            if n is None:
                return
            self.samples.append(n)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> LoadMonitor:
        self._thread = threading.Thread(target=self._run, daemon=True, name="load-monitor")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def load_per_core(self) -> float:
        if not self.samples:
            return float("nan")
        return statistics.fmean(self.samples) / (os.cpu_count() or 1)


def time_interleaved(
    methods: dict[str, Callable[[Any], Any]],
    inputs: Sequence[Any],
    reps: int,
    *,
    warmup: bool = True,
    progress: bool = False,
    desc: str = "timing",
) -> Timings:
    """Time `method(x)` for every method and input, `reps` times, interleaved (see the module
    docstring). With `warmup`, each method first runs once on inputs[0], untimed."""
    if reps < 1 or not inputs or not methods:
        raise ValueError("time_interleaved: need reps >= 1, some inputs and some methods")
    names = list(methods)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    outputs: dict[str, list[Any]] = {name: [None] * len(inputs) for name in names}
    if warmup:
        for fn in methods.values():
            fn(inputs[0])
    bar = tqdm(total=reps * len(inputs) * len(names), desc=desc, disable=not progress)
    monitor = LoadMonitor().__enter__()
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        total = dict.fromkeys(names, 0.0)
        for i, x in enumerate(inputs):
            for name in order:
                start = time.perf_counter()
                outputs[name][i] = methods[name](x)
                total[name] += time.perf_counter() - start
                bar.update()
        for name in names:
            seconds[name].append(total[name])
    monitor.__exit__(None, None, None)
    bar.close()
    loads = _LOADS.get()
    if loads is not None and not math.isnan(monitor.load_per_core):
        loads.append(monitor.load_per_core)
    return Timings(seconds, outputs, monitor.load_per_core)
