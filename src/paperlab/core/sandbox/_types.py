"""Limits and results of a sandboxed run."""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

STATUSES = ("ok", "error", "timeout", "signal", "output_limit", "sandbox_error")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. ``None`` means unlimited where allowed."""

    wall_s: float = 10.0  # wall-clock timeout (whole sandboxed process tree killed)
    cpu_s: float = 10.0  # RLIMIT_CPU per process: SIGXCPU, then SIGKILL one second later
    memory_bytes: int | None = 1 << 30  # RLIMIT_AS per process (JVM/Go/node: pass None)
    processes: int = 64  # RLIMIT_NPROC: processes + threads of the sandbox uid
    file_bytes: int = 16 << 20  # RLIMIT_FSIZE: largest file the program may write
    open_files: int = 256  # RLIMIT_NOFILE
    output_bytes: int = 64 << 10  # cap per stream; exceeding it kills the run
    tree_memory_bytes: int | None = 2 << 30  # memory cgroup cap on the whole tree (if available)

    def __post_init__(self) -> None:
        if self.wall_s <= 0 or self.cpu_s <= 0:
            raise ValueError("wall_s and cpu_s must be positive")
        sizes = (self.memory_bytes, self.tree_memory_bytes, self.file_bytes, self.open_files)
        if (
            self.processes < 1
            or self.output_bytes < 0
            or any(s is not None and s < 1 for s in sizes)
        ):
            raise ValueError(f"invalid limits: {self}")

    def rlimits(self, extra_processes: int = 0) -> dict[str, tuple[int, int]]:
        """The rlimits for the program, as ``{"CPU": (soft, hard), ...}``."""
        inf = resource.RLIM_INFINITY
        cpu = max(1, math.ceil(self.cpu_s))
        mem = inf if self.memory_bytes is None else self.memory_bytes
        nproc = self.processes + extra_processes
        return {
            "CPU": (cpu, cpu + 1),
            "AS": (mem, mem),
            "NPROC": (nproc, nproc),
            "FSIZE": (self.file_bytes, self.file_bytes),
            "NOFILE": (self.open_files, self.open_files),
            "CORE": (0, 0),
        }


DEFAULT_LIMITS = Limits()


@dataclass
class RunResult:
    """What a sandboxed run did. ``isolation`` names the protections that were in force."""

    status: str  # one of STATUSES
    returncode: int | None  # exit code, or -signal; None on timeout/output_limit/sandbox_error
    stdout: str  # decoded with errors="replace", truncated to Limits.output_bytes
    stderr: str
    wall_s: float
    truncated: bool
    isolation: tuple[str, ...]
    detail: str = ""  # human-readable reason: the limit hit, the signal, the sandbox error

    @property
    def passed(self) -> bool:
        """True only for a clean exit with code 0: a timeout, crash or limit hit never passes."""
        return self.status == "ok" and self.returncode == 0
