"""Run independent jobs (e.g. training several small models) in worker processes.

Models this small are bound by per-op overhead, so one thread per model and one process per
core uses a 2-core machine twice as well as one process with two threads. ``workers=1`` runs
everything in this process, in order (the tests, and machines with one core).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import torch
from tqdm import tqdm

from paperlab.core.device import torch_threads

Job = tuple[Callable[..., Any], dict[str, Any]]


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_jobs(
    jobs: Sequence[Job],
    *,
    workers: int = 1,
    threads: int = 1,
    progress: bool = False,
    desc: str = "jobs",
) -> list[Any]:
    """``[fn(**kwargs) for fn, kwargs in jobs]``, spread over ``workers`` processes (functions
    module-level, arguments picklable). Results keep the jobs' order; put the longest jobs
    first so the pool stays balanced. ``progress`` counts finished jobs."""
    bar = tqdm(total=len(jobs), desc=desc, leave=False, disable=not progress)
    workers = min(workers, os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        results = []
        with torch_threads(threads):
            for fn, kwargs in jobs:
                results.append(fn(**kwargs))
                bar.update()
        bar.close()
        return results
    # Linux: fork (no re-import of the caller's main module, tensors shared copy-on-write);
    # the workers run one thread each, as DataLoader workers do, which keeps a forked OpenMP
    # runtime out of trouble. Elsewhere: spawn (functions must then be importable).
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(threads,),
    ) as pool:
        futures = [pool.submit(fn, **kwargs) for fn, kwargs in jobs]
        for _ in as_completed(futures):
            bar.update()
        bar.close()
        return [f.result() for f in futures]
