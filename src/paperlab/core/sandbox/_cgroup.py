"""Per-run memory cgroups, created under the caller's own memory cgroup (v1 or v2).

Nesting under our own cgroup keeps every limit imposed on us in force. A run's cgroup is
removed when the run ends; leftovers of a crashed process are removed by the next probe.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

PREFIX = "paperlab-sandbox-"
_counter = itertools.count()


def _own_memory_cgroup() -> tuple[Path, int] | None:
    """(directory of our memory cgroup, cgroup version), or None."""
    try:
        cgroups = Path("/proc/self/cgroup").read_text().splitlines()
        mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    paths = {}
    for line in cgroups:
        hier, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            paths[1] = path
        elif hier == "0":
            paths[2] = path
    found: dict[int, Path] = {}
    for line in mountinfo:
        fields, _, rest = line.partition(" - ")
        fields, rest = fields.split(), rest.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        root, mountpoint, fstype, superopts = fields[3], fields[4], rest[0], rest[2]
        version = 2 if fstype == "cgroup2" else None
        if fstype == "cgroup" and "memory" in superopts.split(","):
            version = 1
        if version in paths and version not in found and paths[version].startswith(root):
            found[version] = Path(mountpoint) / paths[version][len(root) :].lstrip("/")
    for version in (1, 2):  # the v1 memory controller wins: that is where "memory" lives
        if version in found:
            return found[version], version
    return None


def _files(version: int) -> tuple[str, str, str]:
    """(limit file, swap limit file, file with the oom_kill counter)."""
    if version == 1:
        return "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.oom_control"
    return "memory.max", "memory.swap.max", "memory.events"


def create(limit_bytes: int) -> Path | None:
    """A fresh child memory cgroup limited to ``limit_bytes``, or None if not possible."""
    own = _own_memory_cgroup()
    if own is None:
        return None
    base, version = own
    limit_file, swap_file, _ = _files(version)
    path = base / f"{PREFIX}{os.getpid()}-{next(_counter)}"
    try:
        path.mkdir()
    except OSError:
        return None
    try:
        (path / limit_file).write_text(str(limit_bytes))
        try:  # no swap beyond the limit (the swap file is absent without swap accounting)
            (path / swap_file).write_text(str(limit_bytes) if version == 1 else "0")
        except FileNotFoundError:
            pass
    except OSError:
        remove(path)
        return None
    return path


def oom_kills(path: Path) -> int:
    """How many processes the kernel's OOM killer killed in this cgroup."""
    version = 1 if (path / "memory.limit_in_bytes").exists() else 2
    try:
        for line in (path / _files(version)[2]).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def remove(path: Path, wait_s: float = 2.0) -> bool:
    """rmdir the cgroup; retries while the last tasks are still being torn down."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def remove_stale() -> None:
    """Remove empty leftovers of earlier (crashed) processes; busy ones stay."""
    own = _own_memory_cgroup()
    if own is None:
        return
    for path in own[0].glob(PREFIX + "*"):
        pid = path.name[len(PREFIX) :].split("-")[0]
        if pid != str(os.getpid()) and not Path(f"/proc/{pid}").exists():
            remove(path, wait_s=0)
