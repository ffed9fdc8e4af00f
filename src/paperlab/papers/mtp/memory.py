"""Peak memory of one training step, naive vs memory-efficient schedule (Sec. 2, Fig. 2).

Each measurement runs in a fresh Python process, so one schedule's peak cannot hide the
other's: the child builds the model and batch, resets the kernel's peak-RSS counter (Linux:
`/proc/self/clear_refs`, then VmHWM in `/proc/self/status`), runs one forward + backward and
reports the peak resident set size over the set-up ("excess"). Elsewhere it falls back to
`ru_maxrss`, which cannot be reset (a lower bound if the set-up peaked higher). On the CPU,
PyTorch allocates straight from the C allocator (no caching), and tensors of tens of MB are
mmap'ed and returned on free, so the peak RSS follows the peak of live tensors.

    python -m paperlab.papers.mtp.memory '{"schedule": "efficient", "vocab_size": 32768, ...}'
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from paperlab.papers.mtp.model import MTPConfig, MultiTokenLlama, efficient_backward, mtp_loss

# DEVIATION: the paper's memory argument is about GPU memory; here CPU resident memory.
# ru_maxrss is in kilobytes on Linux, in bytes on macOS
_RSS_UNIT = 1 if sys.platform == "darwin" else 1024
_STATUS = Path("/proc/self/status")


def _status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"{field} not in {_STATUS}")
    return int(match.group(1))


def reset_peak_rss() -> int:
    """Reset the peak-RSS counter where the OS allows it; return the baseline in bytes."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: VmHWM := VmRSS
        return _status_kb("VmRSS") * 1024
    except OSError:
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    try:
        return _status_kb("VmHWM") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RSS_UNIT


def measure_step(
    *,
    schedule: str,
    vocab_size: int,
    dim: int,
    n_layers: int,
    n_future: int,
    batch_size: int,
    seq_len: int,
    seed: int = 0,
) -> dict[str, float]:
    """One training step's peak memory over its set-up, in this process (call it in a fresh one)."""
    if schedule not in ("naive", "efficient"):
        raise ValueError(f"schedule must be 'naive' or 'efficient', got {schedule!r}")
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # the measurement, not the speed, matters here
    config = MTPConfig(
        vocab_size=vocab_size,
        dim=dim,
        n_layers=n_layers,
        n_heads=max(1, dim // 32),
        ffn_hidden=2 * dim,
        max_seq_len=seq_len,
        n_future=n_future,
    )
    model = MultiTokenLlama(config=config)
    x = torch.randint(0, vocab_size, (batch_size, seq_len))
    y = torch.randint(0, vocab_size, (batch_size, seq_len))
    before = reset_peak_rss()
    start = time.perf_counter()
    if schedule == "naive":  # all heads forward, one backward of the summed loss
        loss, _ = mtp_loss(model, x, y)
        loss.backward()
    else:
        loss, _ = efficient_backward(model, x, y)
    seconds = time.perf_counter() - start
    after = peak_rss_bytes()
    grad_norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters()))
    return {
        "excess_bytes": after - before,
        "setup_bytes": before,
        "loss": float(loss.detach()),
        "grad_norm": float(grad_norm),
        "seconds": seconds,
    }


def measure_in_subprocess(timeout: float = 600.0, **kwargs) -> dict[str, float]:
    """`measure_step(**kwargs)` in a fresh interpreter; returns its figures."""
    cmd = [sys.executable, "-m", "paperlab.papers.mtp.memory", json.dumps(kwargs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement failed ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(measure_step(**json.loads(sys.argv[1]))))
