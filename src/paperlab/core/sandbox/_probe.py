"""Find out, once per process, which isolation works here, by trying it for real."""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass, field

from . import _cgroup
from ._fs import Workspace, allocate_uid, remove_stale
from ._launch import Mode, launch
from ._types import Limits

ALL_NS = ("net", "pid", "ipc", "mount")
ROOT = Mode("root", ALL_NS, userns=False, drop_uid=True, drop_caps=True)
ROOT_NO_NS = Mode("root-no-namespaces", (), userns=False, drop_uid=True, drop_caps=True)
USERNS = Mode("userns", ALL_NS, userns=True, drop_uid=False, drop_caps=True)
BASIC = Mode("basic", (), userns=False, drop_uid=False, drop_caps=False)

FEATURES = {
    "pgroup": "own process group under a child subreaper: the whole tree is killed at the "
    "wall-clock limit and when the program exits",
    "rlimits": "RLIMIT_CPU, _AS, _NPROC, _FSIZE, _NOFILE; no core dumps",
    "env": "scrubbed environment: PATH, HOME, LANG, LC_ALL, TMPDIR plus what the caller passes",
    "netns": "empty network namespace (loopback down): no connection in or out",
    "pidns": "own PID namespace: host processes are invisible, everything dies with the run",
    "ipcns": "own IPC namespace: SysV/POSIX IPC objects vanish with the run",
    "mountns": "whole filesystem read-only and nosuid except the sandbox dir; private tmpfs "
    "on /tmp, /var/tmp, /dev/shm, /run",
    "nounix": "seccomp filter: no AF_UNIX socket can be created, so no host socket bound to a "
    "path is reachable (the network namespace only hides abstract ones)",
    "uid": "fresh unprivileged uid/gid per sandbox, no capabilities, no_new_privs "
    "(RLIMIT_NPROC then counts only that sandbox)",
    "userns": "user namespace, only needed without root",
    "memcg": "memory cgroup caps the memory of the whole process tree (tree_memory_bytes)",
}


@dataclass(frozen=True)
class System:
    mode: Mode
    memcg: bool
    failures: dict[str, str] = field(default_factory=dict)  # mode or feature -> why it failed


def _trial(mode: Mode) -> str | None:
    """Run `true` under `mode`; None if it worked, else why not."""
    true = shutil.which("true") or "/bin/true"
    ws = Workspace(allocate_uid() if mode.drop_uid else None)
    try:
        result = launch(
            [true],
            ws=ws,
            mode=mode,
            limits=Limits(wall_s=10.0),
            env={"PATH": "/usr/bin:/bin"},
            network=False,
            stdin=None,
            use_memcg=False,
        )
    finally:
        ws.remove()
    return None if result.passed else f"{result.status}: {result.detail} {result.stderr}".strip()


def _memcg_works() -> str | None:
    _cgroup.remove_stale()
    path = _cgroup.create(64 << 20)
    if path is None:
        return "no writable memory cgroup (v1 memory controller or cgroup2 with memory enabled)"
    _cgroup.remove(path)
    return None


@functools.cache
def system() -> System:
    remove_stale()  # what a killed earlier run left behind
    failures: dict[str, str] = {}
    candidates = [ROOT, ROOT_NO_NS] if os.geteuid() == 0 else [USERNS]
    chosen = BASIC
    for mode in candidates:
        why = _trial(mode)
        if why is None:
            chosen = mode
            break
        failures[mode.name] = why
    memcg_why = _memcg_works() if os.geteuid() == 0 else "not root"
    if memcg_why:
        failures["memcg"] = memcg_why
    return System(chosen, memcg_why is None, failures)


def report() -> list[tuple[str, bool, str]]:
    sys_ = system()
    active = set(sys_.mode.isolation(network=False)) | {"env"}
    active |= {"memcg"} if sys_.memcg else set()
    rows = []
    for name, what in FEATURES.items():
        if name == "userns" and sys_.mode.name.startswith("root"):
            rows.append((name, True, "not needed: running as root"))
            continue
        ok = name in active
        rows.append((name, ok, what if ok else f"MISSING: {_why_missing(name, sys_)}"))
    return rows


def _why_missing(name: str, sys_: System) -> str:
    if name == "memcg":
        return sys_.failures.get("memcg", "unavailable")
    if name == "uid":
        return (
            f"not root: programs run as your own uid {os.getuid()} and can read and write "
            "whatever you can"
        )
    tried = "; ".join(f"{mode}: {why}" for mode, why in sys_.failures.items() if mode != "memcg")
    return f"namespaces unavailable ({tried or 'not tried'})"
