"""Side-by-side wall-clock timing: every method on every prompt, interleaved, medians.

Speed claims and benchmarks compare methods in one process on the same inputs. Interleaving
(each repetition runs every prompt through every method, in an order that rotates from one
repetition to the next) spreads slow moments of a shared machine over all methods instead of
charging them to whichever ran last.

    timings = time_interleaved({"plain": f, "fast": g}, prompts, reps=5)
    timings.median("plain") / timings.median("fast")      # the speedup
    timings.outputs["fast"][0]                            # g(prompts[0]) of the last repetition
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm


@dataclass
class Timings:
    seconds: dict[str, list[float]]  # per method: summed seconds over prompts, per repetition
    outputs: dict[str, list[Any]]  # per method: its return value per prompt (last repetition)

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratio(self, slower: str, faster: str) -> float:
        """median(slower) / median(faster): how many times faster `faster` is."""
        return self.median(slower) / self.median(faster)


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
    bar.close()
    return Timings(seconds, outputs)
